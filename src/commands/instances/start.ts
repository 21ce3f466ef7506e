import {BaseCommand} from '../../cli/base-command.js'
import {instanceIdArg, realVastProvider, vastFlags} from '../../cli/vast.js'
import {type InstanceActionResult, instanceAction} from '../../vast/index.js'

export type StartResult = InstanceActionResult

export default class InstancesStart extends BaseCommand {
  static summary = 'Start a stopped Vast.ai instance again (it may wait for its GPU to be free).'
  static description = 'Not retried blindly: if Vast.ai does not confirm, check with `ups instances show ID`.'
  static examples = ['<%= config.bin %> instances start 31000001', '<%= config.bin %> instances start 31000001 --json']
  static args = instanceIdArg
  static flags = vastFlags

  async run(): Promise<StartResult> {
    const {args, flags} = await this.parse(InstancesStart)
    const result = await instanceAction(realVastProvider(flags, this.logger), args.id, 'start')
    if (!this.jsonEnabled()) this.log(`Starting instance ${result.id}.`)
    return result
  }
}
