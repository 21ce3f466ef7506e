import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {floatFlag, redoFlags, runsRootFlag} from '../cli/pipeline-flags.js'
import {realPipelineDeps} from '../cli/pipeline-deps.js'
import {DEFAULT_LEADERBOARD_CSV, DEFAULT_LEADERBOARD_HTML, parseGateRatios, type PipelineResult, runPipeline} from '../pipeline/index.js'
import {ExitCode, UserError} from '../util/errors.js'

export type RunResult = PipelineResult

export default class Run extends BaseCommand {
  static summary = 'Run the whole pipeline: validate, data check, estimate, train, evaluate, gate, leaderboard, report.'
  static description = `The fast-to-SOTA orchestrator. Creates artifacts/runs/<run_id>/ (metadata.json, resolved configs, logs, checkpoints, eval outputs, summary.json, reports/summary.md) and runs: validate -> data check -> dry-run estimate -> train -> small eval -> gate -> full eval -> gate -> leaderboard -> report. Without --small-eval-config/--full-eval-config both evaluations use the train config's evaluation section.
Gates: the candidate must beat the leaderboard's best baseline by --min-small-delta/--min-full-delta on --improvement-metric and stay within every --gate-ratio KEY=FACTOR (candidate <= FACTOR x baseline); passing the full gate promotes the run to champion.
Re-running with --run-id of an existing run reuses what it finished (OP-003): --skip-training reuses checkpoints and cached metrics unless --redo-small-eval/--redo-full-eval; a changed config (hash) refuses to reuse checkpoints unless --force-train.
Ends with "Training pipeline completed successfully" (exit 0) or "Training pipeline failed: <step>: <reason>" (exit 1). A failed gate exits 0 unless --strict-exit.`
  static examples = [
    '<%= config.bin %> run --train-config configs/local_smoke.yaml',
    '<%= config.bin %> run --train-config configs/train_burgers_32dim.yaml --small-eval-config configs/small_eval_burgers_32dim.yaml --full-eval-config configs/full_eval_burgers_32dim.yaml --tag sweep=lr --notes "lr 3e-4"',
    '<%= config.bin %> run --train-config configs/train_burgers_32dim.yaml --run-id run_20251016_120000_ab12 --skip-training --redo-full-eval',
    '<%= config.bin %> run --train-config configs/train_burgers_32dim.yaml --min-full-delta 0.005 --gate-ratio conservation_gap=1.05 --strict-exit',
    '<%= config.bin %> run --train-config configs/train_burgers_32dim.yaml --set stages.operator.epochs=50 --wandb-mode offline --json',
  ]
  static flags = {
    'train-config': Flags.string({description: 'Training config (YAML).', required: true}),
    'small-eval-config': Flags.string({description: 'Proxy evaluation config (default: the train config\'s evaluation section).'}),
    'full-eval-config': Flags.string({description: 'Full evaluation config (default: the train config\'s evaluation section).'}),
    'skip-validation': Flags.boolean({description: 'Skip the config checks.'}),
    'skip-data-check': Flags.boolean({description: 'Skip the data check (and data generation).'}),
    'skip-dry-run': Flags.boolean({description: 'Skip the estimate.'}),
    'skip-training': Flags.boolean({description: 'Reuse the run\'s checkpoints (needs --run-id of a trained run).'}),
    ...redoFlags,
    'skip-small-eval': Flags.boolean({description: 'Skip the small evaluation and its gate.'}),
    'skip-full-eval': Flags.boolean({description: 'Skip the full evaluation and its gate.'}),
    'run-id': Flags.string({description: 'Run id (run_YYYYmmdd_HHMMSS_xxxx); an existing one is continued.'}),
    tag: Flags.string({description: 'Tag k=v recorded in metadata and the leaderboard. Repeatable.', multiple: true}),
    notes: Flags.string({description: 'Free-text notes for the run.'}),
    set: configOverrideFlag,
    'min-small-delta': floatFlag({description: 'Least improvement over the best baseline in the small evaluation.', default: 0}),
    'min-full-delta': floatFlag({description: 'Least improvement over the best baseline in the full evaluation.', default: 0}),
    'improvement-metric': Flags.string({description: 'Metric the gates compare (lower is better, except r2/accuracy/psnr/ssim/correlation).', default: 'nrmse'}),
    'gate-ratio': Flags.string({description: 'KEY=FACTOR: the candidate\'s KEY must be <= FACTOR x the baseline\'s. Repeatable.', multiple: true}),
    'leaderboard-csv': Flags.string({description: 'Leaderboard CSV.', default: DEFAULT_LEADERBOARD_CSV}),
    'leaderboard-html': Flags.string({description: 'Leaderboard HTML table ("" for none).', default: DEFAULT_LEADERBOARD_HTML}),
    'wandb-mode': Flags.string({description: 'W&B mode for training.', options: ['online', 'offline', 'disabled'], default: 'disabled'}),
    'leaderboard-wandb': Flags.boolean({description: 'Also publish the leaderboard row (and the CSV/HTML) to W&B as a job_type=leaderboard run. Needs WANDB_API_KEY; never fails the pipeline.'}),
    'leaderboard-wandb-project': Flags.string({description: 'W&B project of the leaderboard run (default: the config\'s logging.wandb.project).'}),
    'leaderboard-wandb-entity': Flags.string({description: 'W&B entity of the leaderboard run (default: the config\'s logging.wandb.entity, else the key\'s).'}),
    'strict-exit': Flags.boolean({description: 'A failed gate exits 1.'}),
    gpu: Flags.string({description: 'Target GPU of the dry-run estimate (default: this machine, timed on its backend).'}),
    'runs-root': runsRootFlag,
  }

  async run(): Promise<RunResult> {
    const {flags} = await this.parse(Run)
    const result = await runPipeline(
      {
        trainConfig: flags['train-config'], smallEvalConfig: flags['small-eval-config'], fullEvalConfig: flags['full-eval-config'],
        overrides: flags.set ?? [], runId: flags['run-id'],
        skipValidation: flags['skip-validation'], skipDataCheck: flags['skip-data-check'], skipDryRun: flags['skip-dry-run'],
        skipTraining: flags['skip-training'], forceTrain: flags['force-train'], skipSmallEval: flags['skip-small-eval'], skipFullEval: flags['skip-full-eval'],
        redoSmallEval: flags['redo-small-eval'], redoFullEval: flags['redo-full-eval'],
        tags: parseTags(flags.tag ?? []), notes: flags.notes,
        minSmallDelta: flags['min-small-delta'], minFullDelta: flags['min-full-delta'], improvementMetric: flags['improvement-metric'],
        gateRatios: parseGateRatios(flags['gate-ratio']),
        leaderboardCsv: flags['leaderboard-csv'], leaderboardHtml: flags['leaderboard-html'] || null,
        wandbMode: flags['wandb-mode'] as 'online' | 'offline' | 'disabled', leaderboardWandb: flags['leaderboard-wandb'],
        leaderboardWandbProject: flags['leaderboard-wandb-project'], leaderboardWandbEntity: flags['leaderboard-wandb-entity'],
        strictExit: flags['strict-exit'], gpu: flags.gpu,
      },
      realPipelineDeps(this.logger, flags['runs-root']),
    )
    if (!this.jsonEnabled()) this.log(result.message)
    process.exitCode = result.exitCode
    return result
  }
}

export function parseTags(values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const v of values) {
    const i = v.indexOf('=')
    if (i <= 0) throw new UserError(`--tag "${v}" is not k=v.`, {code: 'PIPELINE_BAD_TAG', hint: 'For example --tag sweep=lr.', exitCode: ExitCode.USAGE})
    out[v.slice(0, i)] = v.slice(i + 1)
  }
  return out
}
