
import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {configOverrideFlag} from '../../cli/flags.js'
import {dataTarget, loadConfig} from '../../config/index.js'
import {ExitCode, UserError} from '../../util/errors.js'
import {type ValidateResult, renderValidate, validateData} from '../../data/index.js'

export type ValidateCommandResult = ValidateResult

export default class DataValidate extends BaseCommand {
  static summary = 'Check PDEBench HDF5 files: structure, coordinates, values, checksums.'
  static description = `Per file: exists and non-empty; opens as HDF5; the task's datasets with the expected rank; float dtype; coordinates strictly increasing; a full streamed scan for NaN/Inf, constant samples and |value| > 1e10 (--quick scans 10% of the samples); size and checksum against --manifest (fields path, size_bytes, checksum, checksum_type); no file or sample shared between splits (same file, symlink, hard link or identical content fails).
A raw PDEBench file (e.g. 1D_Burgers_Sols_Nu0.01.hdf5) in the root is checked per split over that split's sample indices (data.raw_split).
Prints a table and "✅ Data is valid", or which file failed which check (exit 1). With --quarantine DIR, failing files are moved (never deleted) into DIR with a <name>.reason.json, and the command to re-fetch them is printed.
Give either a config (its data.root, data.task, data.split are used) or --data-root and --task.`
  static examples = [
    '<%= config.bin %> data validate --data-root data/pdebench --task burgers1d --all-splits',
    '<%= config.bin %> data validate configs/train_burgers_32dim.yaml',
    '<%= config.bin %> data validate --data-root data/pdebench --task burgers1d --split train --quick',
    '<%= config.bin %> data validate --data-root data/pdebench --task burgers1d --manifest data/pdebench/manifest.json --quarantine data/quarantine',
    '<%= config.bin %> data validate --data-root data/pdebench --task burgers1d --json',
  ]
  static args = {
    config: Args.string({description: 'A ups YAML config; its data.root/task/split say what to check.'}),
  }
  static flags = {
    'data-root': Flags.string({description: 'Folder holding {task}_{split}.h5, {task}_{split}_*.h5 or a raw PDEBench file (split by sample index).'}),
    task: Flags.string({description: 'Task name, e.g. burgers1d (repeatable).', multiple: true}),
    split: Flags.string({description: 'One split.', options: ['train', 'val', 'valid', 'test'], exclusive: ['all-splits']}),
    'all-splits': Flags.boolean({description: 'train, val (or valid) and test (the default).'}),
    manifest: Flags.string({description: 'JSON/CSV manifest with path, size_bytes, checksum, checksum_type.'}),
    file: Flags.string({description: 'The raw PDEBench file to split into train/val/test (data.file), when the root holds several for the task.'}),
    quick: Flags.boolean({description: 'Scan 10% of the samples instead of all of them.'}),
    quarantine: Flags.string({description: 'Move failing files into this folder (never deletes).'}),
    set: configOverrideFlag,
  }

  async run(): Promise<ValidateCommandResult> {
    const {args, flags} = await this.parse(DataValidate)
    const target = args.config ? dataTarget((await loadConfig(args.config, {overrides: flags.set})).config) : {root: flags['data-root'], tasks: flags.task, split: undefined, source: undefined}
    const root = flags['data-root'] ?? target.root
    const tasks = flags.task ?? target.tasks
    if (!root || !tasks || tasks.length === 0) {
      throw new UserError('Say what to validate: a CONFIG, or --data-root DIR and --task TASK.', {
        code: 'USAGE', exitCode: ExitCode.USAGE, hint: 'ups data validate --data-root data/pdebench --task burgers1d',
      })
    }
    const split = flags.split ?? (flags['all-splits'] ? undefined : target.split)
    const result = await validateData(
      {root, tasks, splits: split ? [split] : 'all', manifest: flags.manifest, quick: flags.quick, quarantineDir: flags.quarantine, source: flags.file ? {...target.source, file: flags.file} : target.source},
      {now: () => new Date()},
    )
    if (!this.jsonEnabled()) this.log(renderValidate(result))
    if (!result.ok) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}
