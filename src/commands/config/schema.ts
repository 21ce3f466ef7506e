import {BaseCommand} from '../../cli/base-command.js'
import {configJsonSchema} from '../../config/schema.js'

export default class ConfigSchema extends BaseCommand {
  static summary = 'Print the config JSON Schema (for editor completion and validation).'
  static description = 'Point your editor at it, e.g. a `# yaml-language-server: $schema=ups-config.schema.json` comment at the top of a config.'
  static examples = ['<%= config.bin %> config schema > ups-config.schema.json']

  async run(): Promise<Record<string, unknown>> {
    await this.parse(ConfigSchema)
    const schema = configJsonSchema() as Record<string, unknown>
    // The JSON Schema is the output in both modes; --json only wraps nothing.
    if (!this.jsonEnabled()) this.log(JSON.stringify(schema, null, 2))
    return schema
  }
}
