import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {instanceIdArg, realSleep, realVastProvider, vastFlags} from '../../cli/vast.js'
import {redactLines} from '../../util/secrets.js'
import {followLogs} from '../../vast/index.js'

export interface LogsResult {
  id: number
  lines: string[]
}

export default class InstancesLogs extends BaseCommand {
  static summary = "Print a Vast.ai instance's log (the onstart script and ups run output)."
  static description = 'With --follow, keeps printing new lines until the instance stops running (Ctrl-C to quit).'
  static examples = [
    '<%= config.bin %> instances logs 31000001',
    '<%= config.bin %> instances logs 31000001 --tail 100',
    '<%= config.bin %> instances logs 31000001 --follow',
    '<%= config.bin %> instances logs 31000001 --tail 20 --json',
  ]
  static args = instanceIdArg
  static flags = {
    ...vastFlags,
    tail: Flags.integer({description: 'Only the last N lines.', min: 1}),
    follow: Flags.boolean({char: 'f', description: 'Keep printing new lines while the instance runs.'}),
  }

  async run(): Promise<LogsResult> {
    const {args, flags} = await this.parse(InstancesLogs)
    const provider = realVastProvider(flags, this.logger)
    const lines: string[] = []
    if (flags.follow) {
      await followLogs(provider, args.id, {
        sleep: realSleep,
        tail: flags.tail,
        onLines: (raw) => {
          const fresh = redactLines(raw)
          lines.push(...fresh)
          if (!this.jsonEnabled()) this.log(fresh.join('\n'))
        },
      })
    } else {
      lines.push(...redactLines(await provider.logs(args.id, {tail: flags.tail})))
      if (!this.jsonEnabled() && lines.length > 0) this.log(lines.join('\n'))
    }
    return {id: args.id, lines}
  }
}
