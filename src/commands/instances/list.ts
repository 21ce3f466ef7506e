import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {realVastProvider, vastFlags} from '../../cli/vast.js'
import {type InstancesListResult, listInstances, renderInstances} from '../../vast/index.js'

export type ListResult = InstancesListResult

export default class InstancesList extends BaseCommand {
  static summary = 'List your Vast.ai instances: status, label, GPU, $/h, GPU utilisation.'
  static description = 'Wraps `vastai show instances --raw`. Environment values set at launch are never shown.'
  static examples = [
    '<%= config.bin %> instances list',
    '<%= config.bin %> instances list --status running',
    '<%= config.bin %> instances list --status stopped --json',
  ]
  static flags = {
    ...vastFlags,
    status: Flags.string({description: 'Only instances with this status (running, loading, created, stopped, exited, offline).'}),
  }

  async run(): Promise<ListResult> {
    const {flags} = await this.parse(InstancesList)
    const result = await listInstances(realVastProvider(flags, this.logger), {status: flags.status})
    if (!this.jsonEnabled()) this.log(renderInstances(result))
    return result
  }
}
