import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realLaunchRecordsPath, realNow} from '../cli/ops-deps.js'
import {realWandbDeps} from '../cli/tracking-deps.js'
import {analyzeRun, renderAnalyzeSummary, type AnalyzeResult as OpsAnalyzeResult} from '../ops/index.js'

export type AnalyzeResult = OpsAnalyzeResult

export default class Analyze extends BaseCommand {
  static summary = 'Write a markdown report on a run: loss, LR, epochs, grad norms, evaluation, hardware, cost, recommendations, plots.'
  static description = `Reads the local run directory (history.jsonl, summary, metadata, eval/**/results.json, logs/) or, with --source wandb, the run's history and summary from W&B.
Per stage: initial/final/min loss, reduction and a convergence verdict (excellent >= 90 %, good >= 50 %, moderate >= 20 %, else poor), learning rate, epochs and epoch time, gradient norms rated by the runbook's MON-001 ranges. Evaluation metrics are compared with the baselines in the results files and with the champion of the leaderboard CSV; cost comes from the launch records ($UPS_HOME/launches.jsonl).
Plots (loss per stage, grad norm, LR) are written as SVG and PNG next to the report.`

  static examples = [
    '<%= config.bin %> analyze run_20250301_142233_9f3a',
    '<%= config.bin %> analyze run_20250301 --output reports/burgers_analysis.md',
    '<%= config.bin %> analyze artifacts/runs/run_20250301_142233_9f3a --leaderboard reports/leaderboard.csv --json',
    '<%= config.bin %> analyze my-team/universal-simulator/run_20250301_142233_9f3a --source wandb',
  ]

  static args = {
    run: Args.string({required: true, description: 'Run id, unique id prefix or run directory path (W&B: also entity/project/run_id).'}),
  }

  static flags = {
    output: Flags.string({char: 'o', description: 'Report path. [default: reports/<run_id>_analysis.md]'}),
    source: Flags.string({description: 'Where the history comes from.', options: ['local', 'wandb'], default: 'local'}),
    'runs-root': Flags.string({description: 'Folder holding the run directories.', default: 'artifacts/runs'}),
    leaderboard: Flags.string({description: 'Leaderboard CSV to compare with (skipped when missing).', default: 'reports/leaderboard.csv'}),
    plots: Flags.boolean({description: 'Write the SVG/PNG plots.', default: true, allowNo: true}),
    entity: Flags.string({description: 'W&B entity, for --source wandb when the run does not say.'}),
    project: Flags.string({description: 'W&B project, for --source wandb when the run does not say.'}),
  }

  async run(): Promise<AnalyzeResult> {
    const {args, flags} = await this.parse(Analyze)
    const result = await analyzeRun(
      {
        run: args.run,
        runsRoot: flags['runs-root'],
        source: flags.source as 'local' | 'wandb',
        output: flags.output,
        leaderboard: flags.leaderboard,
        launchRecords: realLaunchRecordsPath(),
        plots: flags.plots,
        entity: flags.entity,
        project: flags.project,
      },
      {now: realNow, wandb: flags.source === 'wandb' ? realWandbDeps(this.logger) : undefined},
    )
    if (!this.jsonEnabled()) this.log(renderAnalyzeSummary(result))
    return result
  }
}
