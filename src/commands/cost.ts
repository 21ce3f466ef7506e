import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realLaunchRecordsPath, realNow} from '../cli/ops-deps.js'
import {realVastProvider, vastFlags} from '../cli/vast.js'
import {costReport, renderCost, type CostPeriod, type CostResult as OpsCostResult} from '../ops/index.js'

export type CostResult = OpsCostResult

export default class Cost extends BaseCommand {
  static summary = 'What your instances cost: running $/h and daily burn, and per period the runs launched, total, per successful run, and waste.'
  static description = `The runbook's MON-002 review. Running instances and their $/h come from \`vastai show instances\`; launches come from the launch records ($UPS_HOME/launches.jsonl, default ~/.ups/launches.jsonl) that \`ups launch\` writes.
A launch costs its $/h x its runtime: from started_at to the end in its record, to now while the instance runs, else to the run's last known time (run directory under --runs-root), else for the estimated hours. Every such assumption is listed.
A run succeeded when its run directory's metadata (or its launch record) says finished; failed runs' cost is reported as waste. The period counts launches started in the last 1, 7 or 30 days.`

  static examples = [
    '<%= config.bin %> cost',
    '<%= config.bin %> cost --period month',
    '<%= config.bin %> cost --period day --json | jq .dailyBurnUsd',
    '<%= config.bin %> cost --runs-root /data/ups/artifacts/runs',
  ]

  static flags = {
    period: Flags.string({description: 'Window for the launches counted.', options: ['day', 'week', 'month'], default: 'week'}),
    'runs-root': Flags.string({description: 'Folder holding the run directories (to tell successes from failures).', default: 'artifacts/runs'}),
    ...vastFlags,
  }

  async run(): Promise<CostResult> {
    const {flags} = await this.parse(Cost)
    const result = await costReport(
      {period: flags.period as CostPeriod, runsRoot: flags['runs-root'], launchRecords: realLaunchRecordsPath()},
      {provider: realVastProvider(flags, this.logger), now: realNow},
    )
    if (result.vastError) this.note(`warning: ${result.vastError}`)
    if (!this.jsonEnabled()) this.log(renderCost(result))
    return result
  }
}
