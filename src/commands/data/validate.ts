import {readFile} from 'node:fs/promises'

import {Args, Flags} from '@oclif/core'
import {parse as parseYaml} from 'yaml'

import {BaseCommand} from '../../cli/base-command.js'
import {ExitCode, UserError} from '../../util/errors.js'
import {type ValidateResult, renderValidate, validateData} from '../../data/index.js'

export type ValidateCommandResult = ValidateResult

export default class DataValidate extends BaseCommand {
  static summary = 'Check PDEBench HDF5 files: structure, coordinates, values, checksums.'
  static description = `Per file: exists and non-empty; opens as HDF5; the task's datasets with the expected rank; float dtype; coordinates strictly increasing; a full streamed scan for NaN/Inf, constant samples and |value| > 1e10 (--quick scans 10% of the samples); size and checksum against --manifest (fields path, size_bytes, checksum, checksum_type).
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
    'data-root': Flags.string({description: 'Folder holding {task}_{split}.h5 or {task}_{split}_*.h5.'}),
    task: Flags.string({description: 'Task name, e.g. burgers1d (repeatable).', multiple: true}),
    split: Flags.string({description: 'One split.', options: ['train', 'val', 'valid', 'test'], exclusive: ['all-splits']}),
    'all-splits': Flags.boolean({description: 'train, val (or valid) and test (the default).'}),
    manifest: Flags.string({description: 'JSON/CSV manifest with path, size_bytes, checksum, checksum_type.'}),
    quick: Flags.boolean({description: 'Scan 10% of the samples instead of all of them.'}),
    quarantine: Flags.string({description: 'Move failing files into this folder (never deletes).'}),
  }

  async run(): Promise<ValidateCommandResult> {
    const {args, flags} = await this.parse(DataValidate)
    const target = args.config ? await dataFromConfig(args.config) : {root: flags['data-root'], tasks: flags.task, split: undefined}
    const root = flags['data-root'] ?? target.root
    const tasks = flags.task ?? target.tasks
    if (!root || !tasks || tasks.length === 0) {
      throw new UserError('Say what to validate: a CONFIG, or --data-root DIR and --task TASK.', {
        code: 'USAGE', exitCode: ExitCode.USAGE, hint: 'ups data validate --data-root data/pdebench --task burgers1d',
      })
    }
    const split = flags.split ?? (flags['all-splits'] ? undefined : target.split)
    const result = await validateData(
      {root, tasks, splits: split ? [split] : 'all', manifest: flags.manifest, quick: flags.quick, quarantineDir: flags.quarantine},
      {now: () => new Date()},
    )
    if (!this.jsonEnabled()) this.log(renderValidate(result))
    if (!result.ok) process.exitCode = ExitCode.CHECK_FAILED
    return result
  }
}

/**
 * data.root / data.task / data.split straight from the YAML. This switches to the config
 * module's loadConfig (includes, overrides, interpolation) once it lands.
 */
async function dataFromConfig(path: string): Promise<{root?: string; tasks?: string[]; split?: string}> {
  let doc: unknown
  try {
    doc = parseYaml(await readFile(path, 'utf8'))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UserError(`Config ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(error as Error).message.split('\n')[0]}`}.`, {
      code: 'CONFIG_UNREADABLE', exitCode: ExitCode.USAGE, hint: 'Check the path, or pass --data-root and --task instead.',
    })
  }
  const data = (doc as {data?: Record<string, unknown>} | null)?.data
  if (!data || typeof data !== 'object') {
    throw new UserError(`Config ${path} has no "data" section.`, {code: 'CONFIG_INVALID', exitCode: ExitCode.USAGE, hint: 'Add data.root and data.task, or pass --data-root and --task.'})
  }
  const task = data.task
  return {
    root: typeof data.root === 'string' ? data.root : undefined,
    tasks: typeof task === 'string' ? [task] : Array.isArray(task) ? task.map(String) : undefined,
    split: typeof data.split === 'string' ? data.split : undefined,
  }
}
