import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {realMonitorDeps} from '../cli/ops-deps.js'
import {floatFlag, instanceIdArg, vastFlags} from '../cli/vast.js'
import {type WatchdogResult, renderWatchdog, runWatchdog} from '../ops/index.js'
import {ExitCode} from '../util/errors.js'

export type {WatchdogResult} from '../ops/index.js'

export default class Watchdog extends BaseCommand {
  static summary = 'Watch an instance until its run ends; stop it (never destroy) on failure, runaway cost, idle GPU or too long a run.'
  static description =
    'Every --interval seconds: a failure marker in the log ("Training pipeline failed", a traceback, NaN), cost above ' +
    '--budget-factor x the launch estimate, GPU utilisation under 50% for --idle-minutes after training started, or runtime over ' +
    '--max-hours makes it save the log to incidents/<time>_<id>/ and STOP the instance (its disk is kept). It says what it did and ' +
    'why on stdout. Exit 0 when the run ended by itself (or --once found nothing), 1 when it stopped the instance, 3 when stopping failed.'
  static examples = [
    '<%= config.bin %> watchdog 31000001',
    '<%= config.bin %> watchdog 31000001 --max-hours 8 --budget-factor 1.5 --idle-minutes 10',
    '<%= config.bin %> watchdog 31000001 --once --json   # from cron',
    'nohup <%= config.bin %> watchdog 31000001 >> watchdog.log 2>&1 &',
  ]
  static args = instanceIdArg
  static flags = {
    ...vastFlags,
    interval: Flags.integer({description: 'Seconds between checks.', default: 60, min: 1}),
    'max-hours': floatFlag({description: 'Stop when the instance has run longer than this.'}),
    'budget-factor': floatFlag({description: 'Stop when cost so far exceeds this multiple of the launch estimate.', default: 1.5}),
    'idle-minutes': floatFlag({description: 'Stop when GPU utilisation stays under 50% this long after training started.', default: 10}),
    once: Flags.boolean({description: 'Check once and exit.'}),
  }

  async run(): Promise<WatchdogResult> {
    const {args, flags} = await this.parse(Watchdog)
    const monitorDeps = realMonitorDeps(flags, this.logger)
    const result = await runWatchdog(
      {instanceId: args.id, intervalMs: flags.interval * 1000, maxHours: flags['max-hours'], budgetFactor: flags['budget-factor'], idleMinutes: flags['idle-minutes'], once: flags.once},
      {
        ...monitorDeps,
        cwd: process.cwd(),
        env: process.env,
        onEvent: (message) => {
          this.logger.info(message)
          if (!this.jsonEnabled()) this.log(message)
        },
      },
    )
    if (!this.jsonEnabled()) this.log(renderWatchdog(result))
    if (result.outcome === 'stopped') process.exitCode = result.stopError ? ExitCode.EXTERNAL : ExitCode.CHECK_FAILED
    return result
  }
}
