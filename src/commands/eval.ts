import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {progressReporter} from '../cli/progress.js'
import {realWandbDeps} from '../cli/tracking-deps.js'
import {type EvalCommandResult, loadSimulatorForEval, renderEval, runEvaluation} from '../training/eval-index.js'
import type {CorrectorNoise} from '../training/simulator.js'

/** The --json contract: results.json's content plus where the files are. */
export type EvalResultJson = Omit<EvalCommandResult, 'evaluation'>

export default class Eval extends BaseCommand {
  static summary = 'Evaluate trained checkpoints in physical space against persistence and a linear baseline.'
  static description = `Runs the trained simulator on a data split: one-step predictions decode(op(encode(u_t))) (with the diffusion corrector unless --no-corrector) and autoregressive rollouts from the first frame. Reports PDEBench's metrics in physical units (RMSE, nRMSE, MAE, max error, cRMSE, bRMSE, fRMSE in low/mid/high frequency bands, nRMSE per rollout step), the same in latent space, the autoencoder's reconstruction error, and two baselines on the same samples: persistence (u_{t+1} = u_t) and a ridge least-squares linear one-step map fitted on the train split.
Writes results.json, report.md and plots (SVG and PNG) to --out (default <run_dir>/eval/<split>/). Flags left unset fall back to the config's evaluation block. When the checkpoints sit in a run directory, eval/<metric> goes into its summary.json, and to W&B when logging.wandb.enabled.`
  static examples = [
    '<%= config.bin %> eval configs/train_burgers_32dim.yaml --checkpoints artifacts/runs/run_20250101_120000_ab12/checkpoints',
    '<%= config.bin %> eval configs/local_smoke.yaml --checkpoints artifacts/runs/run_20250101_120000_ab12/checkpoints --split val --rollout 10',
    '<%= config.bin %> eval configs/train_burgers_32dim.yaml --checkpoints ckpts/ --no-corrector --max-samples 50 --out reports/burgers-op-only',
    '<%= config.bin %> eval configs/train_burgers_32dim.yaml --checkpoints ckpts/ --tau 0.3 --json',
    '<%= config.bin %> eval configs/train_burgers_32dim.yaml --checkpoints ckpts/ --corrector-noise sample --out reports/burgers-sampled',
  ]
  static args = {
    config: Args.string({description: 'Training config the checkpoints were trained with (YAML).', required: true}),
  }
  static flags = {
    checkpoints: Flags.string({description: 'Folder of the trained checkpoints (<run_dir>/checkpoints).', required: true}),
    split: Flags.string({description: 'Split to evaluate (default: evaluation.split, else test).', options: ['val', 'test', 'train']}),
    rollout: Flags.integer({description: 'Autoregressive rollout steps (default: evaluation.rollout_steps, else 10).', min: 1}),
    tau: Flags.string({description: 'Corrector tau in [0, 1] (default: evaluation.tau, else 0.5).'}),
    corrector: Flags.boolean({description: 'Apply the diffusion corrector / distilled student when the checkpoints have one.', allowNo: true}),
    'corrector-noise': Flags.string({
      description: "Where the corrector's sampling starts (default: evaluation.corrector_noise, else mean): mean = zero noise, a deterministic point estimate; sample = one seeded draw.",
      options: ['mean', 'sample'],
    }),
    out: Flags.string({description: 'Output folder (default: <run_dir>/eval/<split>/).'}),
    'max-samples': Flags.integer({description: 'Evaluate at most this many trajectories.', min: 1}),
    set: configOverrideFlag,
  }

  async run(): Promise<EvalResultJson> {
    const {args, flags} = await this.parse(Eval)
    const tau = flags.tau === undefined ? undefined : Number(flags.tau)
    if (tau !== undefined && !(tau >= 0 && tau <= 1)) this.error(`--tau must be a number in [0, 1] (got ${flags.tau}).`, {exit: 2})
    const progress = progressReporter('eval', process.stderr)
    const result = await runEvaluation(
      {
        configPath: args.config, checkpointsDir: flags.checkpoints, overrides: flags.set, split: flags.split, rollout: flags.rollout,
        tau, useCorrector: flags.corrector, correctorNoise: flags['corrector-noise'] as CorrectorNoise | undefined, maxSamples: flags['max-samples'], outDir: flags.out,
      },
      {
        loadSimulator: loadSimulatorForEval, now: () => new Date(), clock: () => performance.now(), env: process.env,
        onProgress: (done, total, label) => progress.update(done, total, label), wandb: realWandbDeps(this.logger),
      },
    )
    progress.done()
    const {evaluation, ...json} = result
    if (!this.jsonEnabled()) this.log(renderEval(result))
    return json
  }
}
