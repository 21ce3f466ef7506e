import {BaseCommand} from '../../cli/base-command.js'
import {instanceIdArg, realVastProvider, vastFlags} from '../../cli/vast.js'
import {type InstanceActionResult, instanceAction} from '../../vast/index.js'

export type StopResult = InstanceActionResult

export default class InstancesStop extends BaseCommand {
  static summary = 'Stop a Vast.ai instance (GPU billing stops; the disk is kept, and still billed).'
  static description = 'Not retried blindly: if Vast.ai does not confirm, check with `ups instances show ID`.'
  static examples = ['<%= config.bin %> instances stop 31000001', '<%= config.bin %> instances stop 31000001 --json']
  static args = instanceIdArg
  static flags = vastFlags

  async run(): Promise<StopResult> {
    const {args, flags} = await this.parse(InstancesStop)
    const result = await instanceAction(realVastProvider(flags, this.logger), args.id, 'stop')
    if (!this.jsonEnabled()) this.log(`Stopping instance ${result.id}.`)
    return result
  }
}
