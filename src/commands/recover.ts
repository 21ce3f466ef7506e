import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {durationFlag, realLaunchDeps} from '../cli/ops-deps.js'
import {askYesNo, instanceIdArg, vastFlags} from '../cli/vast.js'
import {type RecoverResult, recoverInstance, renderRecover} from '../ops/index.js'

export type {RecoverResult} from '../ops/index.js'

export default class Recover extends BaseCommand {
  static summary = 'Recreate a broken instance (PROC-002): save its log and checkpoints, destroy it, launch a replacement that resumes the run.'
  static description =
    'Plans the replacement first (same config, source commit, image, disk and offer constraints from the launch record; budget ' +
    'and offer checked), so nothing is destroyed when it could not launch. Then saves the log to incidents/<time>_<id>/, tries to ' +
    'copy the run\'s checkpoints off the instance (`vastai copy`), destroys it, and launches a new instance running ' +
    '`ups resume <run id>`, recorded as recovered from the old one. Asks before destroying unless --yes; refuses on a non-terminal without it.'
  static examples = [
    '<%= config.bin %> recover 31000001 --dry-run',
    '<%= config.bin %> recover 31000001',
    '<%= config.bin %> recover 31000001 --yes --wait --json',
  ]
  static args = instanceIdArg
  static flags = {
    ...vastFlags,
    yes: Flags.boolean({char: 'y', description: 'Do not ask before destroying the old instance.'}),
    'dry-run': Flags.boolean({description: 'Show the plan; change nothing.'}),
    wait: Flags.boolean({description: 'Wait for "Training started" on the new instance (roll it back otherwise).'}),
    'wait-timeout': durationFlag({description: 'How long --wait waits (90s, 15m, 1h).', default: 15 * 60_000}),
  }

  async run(): Promise<RecoverResult> {
    const {args, flags} = await this.parse(Recover)
    const deps = realLaunchDeps(flags, this.logger, (_stage, message) => this.note(message))
    const result = await recoverInstance(
      {
        instanceId: args.id, yes: flags.yes, dryRun: flags['dry-run'], isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
        ask: askYesNo, wait: flags.wait, waitTimeoutMs: flags['wait-timeout'],
      },
      deps,
    )
    if (!this.jsonEnabled()) this.log(renderRecover(result))
    return result
  }
}
