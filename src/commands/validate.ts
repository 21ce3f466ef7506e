import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {configOverrideFlag} from '../cli/flags.js'
import {renderValidation, type ValidateResult, validateConfig} from '../config/validate.js'
import {ExitCode} from '../util/errors.js'

export type {ValidateResult} from '../config/validate.js'

export default class Validate extends BaseCommand {
  static summary = 'Check a training/eval config before it costs anything.'
  static description = `Loads the config (includes, --set overrides, \${} interpolation), matches it to the schema and runs every named check: architecture, data, hyperparameters, stages, checkpoints and cache, W&B, Vast.ai. Unknown keys are warnings with a "did you mean".`

  static examples = [
    '<%= config.bin %> validate configs/train_burgers_32dim.yaml',
    '<%= config.bin %> validate configs/train_burgers_32dim.yaml --no-data --strict   # in CI, where the data is not present',
    '<%= config.bin %> validate configs/train_burgers_32dim.yaml --set training.batch_size=32 --json',
  ]

  static args = {
    config: Args.string({description: 'Path to the YAML config.', required: true}),
  }

  static flags = {
    strict: Flags.boolean({description: 'Treat warnings (unknown keys, unusual values) as failures.'}),
    'no-data': Flags.boolean({description: 'The data is not on this machine (CI): a missing data.root is a warning.'}),
    set: configOverrideFlag,
  }

  async run(): Promise<ValidateResult> {
    const {args, flags} = await this.parse(Validate)
    const result = await validateConfig(args.config, {overrides: flags.set, strict: flags.strict, noData: flags['no-data']})
    if (!this.jsonEnabled()) this.log(renderValidation(result))
    if (!result.valid) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
