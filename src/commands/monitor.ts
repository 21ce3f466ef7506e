import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realMonitorDeps} from '../cli/ops-deps.js'
import {vastFlags} from '../cli/vast.js'
import {type MonitorReport, monitorInstance, renderMonitor, watchMonitor} from '../ops/index.js'

export type MonitorResult = MonitorReport

export default class Monitor extends BaseCommand {
  static summary = 'Health check of a training instance (the runbook\'s MON-001 table); exit 0 healthy, 1 warning, 2 critical.'
  static description =
    'Instance status, uptime, GPU utilisation/memory/temperature, cost so far against the launch estimate, and from the log tail: ' +
    'Training started, stage/epoch, loss and grad norm (operator loss trend), tracebacks, NaN and out-of-memory lines. Each metric ' +
    'is rated healthy/warning/critical; thresholds come from the config\'s `monitor` section (the launch\'s config, or --config). ' +
    'Without an id it checks the newest launch in the launch records. --watch repeats every --interval seconds.'
  static examples = [
    '<%= config.bin %> monitor',
    '<%= config.bin %> monitor 31000001',
    '<%= config.bin %> monitor --run run_20251016_100000_ab12 --json',
    '<%= config.bin %> monitor 31000001 --watch --interval 60',
    '*/30 * * * * <%= config.bin %> monitor 31000001 --json > /dev/null || notify-oncall   # cron',
  ]
  static args = {id: Args.integer({description: 'Vast.ai instance id (default: the newest launch).', min: 1})}
  static flags = {
    ...vastFlags,
    run: Flags.string({description: 'Check the instance of this run id (from the launch records).'}),
    config: Flags.string({description: 'Take thresholds from this config\'s `monitor` section.'}),
    watch: Flags.boolean({description: 'Refresh every --interval seconds (in place on a terminal).'}),
    interval: Flags.integer({description: 'Seconds between refreshes with --watch.', default: 30, min: 1}),
    count: Flags.integer({description: 'With --watch: stop after this many reports.', min: 1}),
  }

  async run(): Promise<MonitorResult | undefined> {
    const {args, flags} = await this.parse(Monitor)
    const deps = realMonitorDeps(flags, this.logger)
    const target = {instanceId: args.id, runId: flags.run, configPath: flags.config}
    let report: MonitorReport
    if (flags.watch) {
      const tty = Boolean(process.stdout.isTTY) && !this.jsonEnabled()
      report = await watchMonitor(target, deps, {
        intervalMs: flags.interval * 1000,
        count: flags.count,
        onReport: (r, i) => {
          if (this.jsonEnabled()) this.log(JSON.stringify(r))
          else this.log(`${tty ? '\x1b[H\x1b[2J' : i > 0 ? '\n' : ''}${renderMonitor(r)}`)
          process.exitCode = r.exitCode
        },
      })
      process.exitCode = report.exitCode
      return undefined
    }
    report = await monitorInstance(target, deps)
    if (!this.jsonEnabled()) this.log(renderMonitor(report))
    process.exitCode = report.exitCode
    return report
  }
}
