import {BaseCommand} from '../../cli/base-command.js'
import {instanceIdArg, realVastProvider, vastFlags} from '../../cli/vast.js'
import {type Instance, renderInstance} from '../../vast/index.js'

export interface ShowResult {
  instance: Instance
}

export default class InstancesShow extends BaseCommand {
  static summary = 'Show one Vast.ai instance: status, GPU utilisation and temperature, disk, cost, SSH.'
  static description = 'Exit 2 (VAST_NOT_FOUND) when the instance does not exist or was destroyed.'
  static examples = ['<%= config.bin %> instances show 31000001', '<%= config.bin %> instances show 31000001 --json']
  static args = instanceIdArg
  static flags = vastFlags

  async run(): Promise<ShowResult> {
    const {args, flags} = await this.parse(InstancesShow)
    const instance = await realVastProvider(flags, this.logger).show(args.id)
    if (!this.jsonEnabled()) this.log(renderInstance(instance))
    return {instance}
  }
}
