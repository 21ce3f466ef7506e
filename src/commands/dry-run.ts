import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {realStepsDeps} from '../cli/pipeline-deps.js'
import {vastFlags} from '../cli/vast.js'
import {type DryRunResult, dryRun, realPipelineSteps, renderDryRun} from '../pipeline/index.js'
import {type GpuBackend, GPU_BACKEND_NAMES} from '../pipeline/gpu-calibration.js'
import {GPU_NAMES} from '../pipeline/gpus.js'

export type DryRunCommandResult = DryRunResult

export default class DryRun extends BaseCommand {
  static summary = 'Check a config end to end without training, and estimate the run\'s time and cost.'
  static description = `Validates the config (the \`ups validate\` checks), checks the data (quick scan; with data.generate and no files, generates them), builds every model (parameters and memory), times real training steps per enabled stage on synthetic batches with the local backend (the loop's own step, after a warm-up until the step time settles), and estimates the whole run on the target GPU: epochs x steps per epoch x a GPU step of (kernels per step, counted with tf.profile) x (per-kernel cost) + FLOPs / (achieved FLOP/s), the two constants calibrated from recorded GPU bench results for the backend assumed on the target (tensorflow-gpu on a CUDA 11 image such as launch's default, else webgpu; --target-backend overrides): "calibrated" for a recorded GPU, "extrapolated" (FLOP/s scaled by FP32 peak) for another GPU, "unmeasured" for a backend without a record (priced with the webgpu figure as a named stand-in), plus evaluation (two passes, as \`ups run\` does), at the GPU's price (a dated table, or the cheapest live Vast.ai offer with --live-prices). Writes estimate.json. Any failure names the step and exits 1.`
  static examples = [
    '<%= config.bin %> dry-run configs/train_burgers_32dim.yaml',
    '<%= config.bin %> dry-run configs/train_burgers_32dim.yaml --estimate-only --gpu RTX_4090',
    '<%= config.bin %> dry-run configs/train_burgers_32dim.yaml --estimate-only --static   # table only, no step timing',
    '<%= config.bin %> dry-run configs/local_smoke.yaml --gpu local --json',
    '<%= config.bin %> dry-run configs/train_burgers_32dim.yaml --gpu H100 --live-prices',
  ]
  static args = {config: Args.string({description: 'Path to the YAML training config.', required: true})}
  static flags = {
    ...vastFlags,
    'estimate-only': Flags.boolean({description: 'Skip the data scan and print only the estimate.'}),
    static: Flags.boolean({description: 'Use the throughput table alone: no training steps are timed.'}),
    gpu: Flags.string({description: `Target GPU (${GPU_NAMES.join(', ')}) or "local" for this machine. Default: vast.gpu, else A100.`}),
    'target-backend': Flags.string({description: 'Backend assumed on the GPU target (default: tensorflow-gpu for a CUDA 11 launch image, else webgpu).', options: GPU_BACKEND_NAMES}),
    'skip-data': Flags.boolean({description: 'Do not check (or generate) the data.'}),
    'live-prices': Flags.boolean({description: 'Price with the cheapest current Vast.ai offer (runs `vastai search offers`).'}),
    out: Flags.string({description: 'Folder for estimate.json.', default: 'artifacts'}),
    set: configOverrideFlag,
  }

  async run(): Promise<DryRunCommandResult> {
    const {args, flags} = await this.parse(DryRun)
    const deps = realStepsDeps(this.logger, flags)
    const result = await dryRun(
      args.config,
      {overrides: flags.set, estimateOnly: flags['estimate-only'], skipData: flags['skip-data'], static: flags.static, gpu: flags.gpu, livePrices: flags['live-prices'], out: flags.out, targetBackend: flags['target-backend'] as GpuBackend | undefined},
      realPipelineSteps(deps),
      {cwd: deps.cwd, now: deps.monotonic, provider: deps.provider, onProgress: deps.onProgress, workersOverride: process.env.UPS_TRAIN_WORKERS, system: deps.system, kernelCacheFile: deps.kernelCacheFile},
    )
    if (!this.jsonEnabled()) this.log(renderDryRun(result, flags['estimate-only']))
    return result
  }
}
