import {Args} from '@oclif/core'
import {stringify} from 'yaml'

import {BaseCommand} from '../../cli/base-command.js'
import {configOverrideFlag} from '../../cli/flags.js'
import {loadConfig, trainingConfigHash} from '../../config/index.js'
import {redactConfigSecrets} from '../../util/secrets.js'

export interface ConfigShowResult {
  config: Record<string, unknown>
  files: string[]
  hash: string
  warnings: string[]
}

export default class ConfigShow extends BaseCommand {
  static summary = 'Print the resolved config: includes merged, overrides applied, ${} interpolated.'
  static examples = [
    '<%= config.bin %> config show configs/small_eval_burgers_32dim.yaml',
    '<%= config.bin %> config show configs/train_burgers_32dim.yaml --set stages.operator.epochs=5',
    '<%= config.bin %> config show configs/train_burgers_32dim.yaml --json | jq .hash',
  ]

  static args = {config: Args.string({description: 'Path to the YAML config.', required: true})}
  static flags = {set: configOverrideFlag}

  async run(): Promise<ConfigShowResult> {
    const {args, flags} = await this.parse(ConfigShow)
    const loaded = await loadConfig(args.config, {overrides: flags.set})
    // Secrets from the environment are shown as the ${env:NAME} they came from, never their value.
    const result = {config: redactConfigSecrets(loaded.raw), files: loaded.files, hash: trainingConfigHash(loaded.config), warnings: loaded.warnings}
    for (const w of loaded.warnings) this.note(`warning: ${w}`)
    if (!this.jsonEnabled()) this.log(`# resolved from ${loaded.files.join(', ')}\n# training config hash ${result.hash}\n${stringify(result.config)}`)
    return result
  }
}
