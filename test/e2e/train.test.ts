import assert from 'node:assert/strict'
import {cp, readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {hasStackTrace, REPO_ROOT, runCli, tempDir} from '../helpers.js'
import {tinyConfig} from './train-fixtures.js'

const lastLine = (text: string): string => text.trim().split('\n').pop() ?? ''
const readJsonl = async (path: string) => (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l))

describe('ups train', () => {
  it('configs/local_smoke.yaml trains end to end on generated data', async (t) => {
    const cwd = await tempDir(t)
    await cp(join(REPO_ROOT, 'configs'), join(cwd, 'configs'), {recursive: true})
    const r = await runCli(['train', 'configs/local_smoke.yaml', '--backend', 'wasm', '--json'], {cwd, timeoutMs: 300_000})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^Training started/m)
    assert.equal(lastLine(r.stderr).startsWith('Training pipeline completed successfully'), true, r.stderr)
    const result = JSON.parse(r.stdout)
    assert.match(result.run_dir, /artifacts\/runs\/run_\d{8}_\d{6}_[0-9a-f]{4}$/)
    assert.match(r.stderr, new RegExp(`Run directory: ${result.run_dir}`))
    assert.deepEqual(result.stages.map((s: {status: string}) => s.status), ['trained', 'trained', 'trained', 'trained', 'skipped'])
    const ckpt = join(result.run_dir, 'checkpoints')
    const names = await readdir(ckpt)
    for (const stage of ['autoencoder', 'operator', 'diff_residual', 'consistency_distill']) {
      for (const suffix of ['', '_best', '_ema']) assert.ok(names.includes(`${stage}${suffix}.ckpt`), `${stage}${suffix}.ckpt missing: ${names}`)
    }
    assert.ok(names.includes('operator_epoch0004.ckpt'))
    const meta = JSON.parse(await readFile(join(ckpt, 'metadata.json'), 'utf8'))
    assert.equal(meta.stages.operator.done, true)
    assert.equal(meta.stages.operator.checkpoints.best.length, 64)

    // One training.jsonl record and one history record per epoch (3 + 4 + 1 + 1), all finite.
    const log = await readJsonl(join(result.run_dir, 'logs', 'training.jsonl'))
    const history = await readJsonl(join(result.run_dir, 'history.jsonl'))
    assert.equal(log.length, 9)
    assert.equal(history.length, 9)
    for (const h of history) {
      const stage = Object.keys(h.metrics)[0].split('/')[0]
      for (const k of ['loss', 'val_loss', 'grad_norm', 'lr', 'epoch_time_sec', 'samples_per_sec', 'best_loss', 'epochs_since_improve']) {
        assert.ok(Number.isFinite(h.metrics[`${stage}/${k}`]), `${stage}/${k} = ${h.metrics[`${stage}/${k}`]}`)
      }
      assert.equal(h.step, h.metrics.global_step)
    }
    const op = log.filter((l) => l.stage === 'operator').map((l) => l['operator/loss'])
    assert.equal(op.length, 4)
    assert.ok(op[3] < op[0] * 0.8, `operator loss should fall: ${op}`)
    const runMeta = JSON.parse(await readFile(join(result.run_dir, 'metadata.json'), 'utf8'))
    assert.equal(runMeta.status, 'finished')
    assert.equal(runMeta.backend.name, 'wasm')
    assert.match(runMeta.backend.reason, /requested wasm/)
    assert.ok(runMeta.training.step_time_ms.operator > 0)
    const cacheDir = join(cwd, 'artifacts/data/local_smoke/latent_cache')
    const trainCache = (await readdir(cacheDir)).find((n) => n.startsWith('burgers1d_train-'))
    assert.ok(trainCache && (await stat(join(cacheDir, trainCache, 'meta.json'))).isFile())
  })

  it('a NaN loss stops with the clear error and a non-zero exit, keeping the last good checkpoint', async (t) => {
    const cwd = await tempDir(t)
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
    const r = await runCli(['train', 'tiny.yaml', '--backend', 'cpu', '--run-dir', 'run'], {cwd, env: {UPS_TEST_FAULT: 'nan:operator:2'}})
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /Training pipeline failed: Training diverged: the loss is NaN in stage operator, epoch 2, step \d+/)
    assert.match(r.stderr, /Hint: Lower the learning rate .*gradient clipping/)
    assert.ok(!hasStackTrace(r.stderr), r.stderr)
    const manifest = JSON.parse(await readFile(join(cwd, 'run/checkpoints/operator.ckpt/manifest.json'), 'utf8'))
    assert.equal(manifest.epoch, 1)
    const meta = JSON.parse(await readFile(join(cwd, 'run/metadata.json'), 'utf8'))
    assert.equal(meta.status, 'failed')
    assert.equal(meta.error.code, 'TRAIN_NONFINITE')
    // The fix in the hint works: resume (here without the fault) continues from epoch 1.
    const again = await runCli(['train', 'tiny.yaml', '--backend', 'cpu', '--run-dir', 'run', '--resume', '--set', 'stages.diff_residual.epochs=0', '--set', 'stages.consistency_distill.epochs=0', '--set', 'stages.steady_prior.epochs=0'], {cwd})
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, /Stage autoencoder: already done/)
    assert.match(again.stderr, /Resuming operator after epoch 1/)
  })

  it('usage errors exit 2 without a stack trace', async () => {
    const r = await runCli(['train', 'configs/local_smoke.yaml', '--stage', 'nope'])
    assert.equal(r.code, 2)
    assert.ok(!hasStackTrace(r.stderr), r.stderr)
  })
})
