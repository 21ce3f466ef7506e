/** Instance logs of failed runs, as the fake vastai serves them. */
export const PROLOGUE = 'ups: onstart\nnpm ci ... done\nrun_20250301_100000_ab12: Training started\nconfig: batch_size: 16\noperator epoch 1/25 loss=0.8123 grad_norm=0.12\n'

export const OOM_LOG = PROLOGUE + `Traceback (most recent call last):
  File "/workspace/ups/scripts/train.py", line 88, in <module>
    main()
  File "/usr/local/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1501, in _call_impl
    return forward_call(*args, **kwargs)
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity)
Training pipeline failed
`

export const MISMATCH_LOG = PROLOGUE + `file:///workspace/ups/dist/training/step.js:42
Error: Error in matMul: inner shapes (32) and (64) of Tensors with shapes 12,32 and 64,96 and transposeA=false and transposeB=false must match.
    at Object.assert (file:///workspace/ups/node_modules/@tensorflow/tfjs-core/dist/util_base.js:108:15)
    at trainStep (file:///workspace/ups/dist/training/step.js:42:11)
    at async runStage (file:///workspace/ups/dist/pipeline/run.js:120:7)
Training pipeline failed
`

export const NAN_LOG = PROLOGUE + `operator epoch 2/25 loss=0.5012 grad_norm=0.31
operator epoch 3/25 loss=nan grad_norm=inf
Training pipeline failed: non-finite loss at step 1200
`

export const TRACEBACK_LOG = PROLOGUE + `Traceback (most recent call last):
  File "/workspace/ups/scripts/run_fast_to_sota.py", line 310, in <module>
    main()
  File "/workspace/ups/scripts/run_fast_to_sota.py", line 244, in main
    upload_checkpoints(run_dir)
  File "/workspace/ups/src/ups/utils/upload.py", line 17, in upload_checkpoints
    manifest = json.loads(text)["files"]
  File "/usr/lib/python3.10/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
KeyError: 'files'
`

export const CLEAN_LOG = PROLOGUE + 'operator epoch 2/25 loss=0.5012 grad_norm=0.11\nsaving checkpoint\n'
