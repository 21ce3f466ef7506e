import {BaseCommand} from '../../cli/base-command.js'
import {instanceIdArg, realVastProvider, vastFlags} from '../../cli/vast.js'

export interface SshUrlResult {
  id: number
  url: string
}

export default class InstancesSshUrl extends BaseCommand {
  static summary = 'Print the ssh:// URL of a Vast.ai instance.'
  static description = 'Direct SSH when the instance has a public port, else Vast\'s SSH proxy.'
  static examples = ['<%= config.bin %> instances ssh-url 31000001', '<%= config.bin %> instances ssh-url 31000001 --json']
  static args = instanceIdArg
  static flags = vastFlags

  async run(): Promise<SshUrlResult> {
    const {args, flags} = await this.parse(InstancesSshUrl)
    const url = await realVastProvider(flags, this.logger).sshUrl(args.id)
    if (!this.jsonEnabled()) this.log(url)
    return {id: args.id, url}
  }
}
