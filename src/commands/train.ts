import {randomBytes} from 'node:crypto'
import {join} from 'node:path'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {trainingProgress} from '../cli/progress.js'
import {realWandbDeps} from '../cli/tracking-deps.js'
import {loadConfig, STAGES} from '../config/index.js'
import type {BackendRequest, StageSelection, TrainResult as PipelineResult} from '../training/index.js'
import {createLogger} from '../util/logger.js'

export type TrainResult = PipelineResult

export default class Train extends BaseCommand {
  static summary = 'Train the latent PDE surrogate: autoencoder, latent cache, operator, corrector, distillation.'
  static description = `Runs the stages in order (autoencoder -> latent cache -> operator -> diff_residual -> consistency_distill -> steady_prior); a stage with epochs <= 0 is skipped. Generates the data first when data.generate is set and the files are missing.
Writes checkpoints (<stage>.ckpt, <stage>_best.ckpt, <stage>_ema.ckpt, numbered ones), logs/training.jsonl and history.jsonl into the run directory, and prints "Training started", one line per epoch, and "Training pipeline completed successfully" or "Training pipeline failed: <reason>".
A run directory that already has checkpoints is resumed: finished stages are kept and the current one continues from its newest valid checkpoint (a corrupt one is reported and skipped), ending with the same weights as an uninterrupted run.`

  static examples = [
    '<%= config.bin %> train configs/local_smoke.yaml',
    '<%= config.bin %> train configs/train_burgers_32dim.yaml --backend tensorflow --run-dir artifacts/runs/run_20250301_142233_9f3a',
    '<%= config.bin %> train configs/train_burgers_32dim.yaml --resume   # the newest run under artifacts/runs',
    '<%= config.bin %> train configs/train_burgers_32dim.yaml --backend webgpu   # Dawn on the Vulkan GPU (see ups doctor)',
    '<%= config.bin %> train configs/train_burgers_32dim.yaml --run-dir artifacts/runs/run_20250301_142233_9f3a --stage diff_residual',
    '<%= config.bin %> train configs/local_smoke.yaml --set stages.operator.epochs=2 --set training.batch_size=4 --json',
  ]

  static args = {config: Args.string({description: 'Path to the YAML config.', required: true})}

  static flags = {
    stage: Flags.string({description: 'Train every stage, or only this one (its upstream stages must be done).', options: ['all', ...STAGES], default: 'all'}),
    backend: Flags.string({
      description: 'TensorFlow.js backend (auto: tfjs-node-gpu, webgpu on a GPU adapter, tfjs-node, wasm, cpu, first that loads; webgpu accepts a software adapter only with UPS_WEBGPU_ALLOW_SOFTWARE=1).',
      options: ['auto', 'tensorflow', 'tensorflow-gpu', 'webgpu', 'wasm', 'cpu'],
      default: 'auto',
    }),
    resume: Flags.boolean({description: 'Continue a run: the one in --run-dir, else the newest under artifacts/runs.'}),
    'run-dir': Flags.string({description: 'Run directory to write (created when missing; resumed when it has checkpoints).'}),
    set: configOverrideFlag,
  }

  async run(): Promise<TrainResult> {
    const {args, flags} = await this.parse(Train)
    const loaded = await loadConfig(args.config, {overrides: flags.set})
    for (const w of loaded.warnings) this.note(`warning: ${w}`)
    const {prepareTrainRunDir, trainPipeline} = await import('../training/index.js')
    const {dir, created} = await prepareTrainRunDir({
      path: flags['run-dir'], resume: flags.resume, runsRoot: join('artifacts', 'runs'), config: loaded.raw,
      now: new Date(), randomHex: () => randomBytes(2).toString('hex'),
    })
    this.note(`${created ? 'Run directory' : 'Resuming run directory'}: ${dir.path}`)
    const logger = createLogger({level: this.verbose ? 'debug' : 'info', file: join(dir.paths.logs, 'ups.jsonl')})
    const result = await trainPipeline(loaded.config, {
      runDir: dir, backend: flags.backend as BackendRequest, stage: flags.stage as StageSelection, resume: flags.resume,
      deps: {
        clock: () => Date.now(), logger, env: process.env, cwd: process.cwd(),
        kill: () => process.kill(process.pid, 'SIGKILL'),
        peakRssBytes: () => process.resourceUsage().maxRSS * 1024,
        wandb: loaded.config.logging?.wandb?.enabled ? realWandbDeps(logger) : undefined,
        // Step, samples/s and ETA inside an epoch: a live line on a terminal, a plain line every 30 s otherwise.
        onProgress: trainingProgress(process.stderr, () => Date.now()),
      },
    })
    if (!this.jsonEnabled()) this.log(renderTrain(result))
    return result
  }
}

export function renderTrain(r: TrainResult): string {
  const adapter = r.backend.adapter ? ` on ${r.backend.adapter.description || r.backend.adapter.device || r.backend.adapter.vendor}${r.backend.adapter.software ? ' (software)' : ''}` : ''
  const lines = [`Run ${r.run_id} (${r.run_dir}), backend ${r.backend.name}${adapter}, ${r.seconds.toFixed(1)}s`]
  for (const s of r.stages) {
    const best = s.best_val === null ? '-' : s.best_val.toPrecision(4)
    const time = (s.step_time_ms === null ? '' : `, ${s.step_time_ms.toFixed(1)} ms/step`) + (s.samples_per_sec ? `, ${s.samples_per_sec.toFixed(0)} samples/s` : '')
    lines.push(`  ${s.stage.padEnd(20)} ${s.status.padEnd(12)} epochs ${s.epochs}, best val ${best}${s.stopped_early ? ' (early stop)' : ''}${time}`)
  }
  if (r.latent_cache) lines.push(`  latent cache ${r.latent_cache.dir}: ${r.latent_cache.reused.length} reused, ${r.latent_cache.rebuilt.length} built`)
  lines.push(`Checkpoints: ${r.checkpoints_dir}`)
  return lines.join('\n')
}
