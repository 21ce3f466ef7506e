import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {askYesNo, instanceIdArg, realLaunchesFile, realVastProvider, vastFlags} from '../../cli/vast.js'
import {type InstanceActionResult, confirmDestroy, instanceAction, recordDestroyed} from '../../vast/index.js'

export type DestroyResult = InstanceActionResult & {
  /** Whether the destroy was noted on the instance's launch record (false: ups did not launch it). */
  recorded?: boolean
}

export default class InstancesDestroy extends BaseCommand {
  static summary = 'Destroy a Vast.ai instance and its disk (irreversible).'
  static description =
    'Asks for confirmation on a terminal; elsewhere (scripts, CI) it refuses with exit 2 unless --yes is given. ' +
    'Save logs and checkpoints first; `ups instances stop` keeps the disk.'
  static examples = [
    '<%= config.bin %> instances destroy 31000001',
    '<%= config.bin %> instances destroy 31000001 --yes',
    '<%= config.bin %> instances destroy 31000001 --yes --json',
  ]
  static args = instanceIdArg
  static flags = {
    ...vastFlags,
    yes: Flags.boolean({char: 'y', description: 'Do not ask; destroy.'}),
  }

  async run(): Promise<DestroyResult> {
    const {args, flags} = await this.parse(InstancesDestroy)
    await confirmDestroy(args.id, {yes: flags.yes, isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY), ask: askYesNo})
    const result: DestroyResult = await instanceAction(realVastProvider(flags, this.logger), args.id, 'destroy')
    // The launch record learns when it ended (ups cost, monitor); the destroy itself already happened.
    try {
      result.recorded = await recordDestroyed(realLaunchesFile(), args.id, {at: new Date(), by: 'ups instances destroy'})
    } catch (error) {
      result.recorded = false
      this.note(`Warning: instance ${args.id} was destroyed, but its launch record could not be updated: ${(error as Error).message}`)
    }
    if (!this.jsonEnabled()) this.log(`Destroyed instance ${result.id}.`)
    return result
  }
}
