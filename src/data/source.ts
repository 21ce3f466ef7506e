/**
 * Where a task's splits come from in a data root:
 *  - shards: `{task}_{split}.h5` or `{task}_{split}_*.h5` (when any split of the task has them);
 *  - raw: one PDEBench release file (raw-names.ts), or the file the config names in data.file,
 *    split by sample index (split.ts). A named file wins over shards; several release files for
 *    one task are never picked silently.
 * The config's choice (data.file, data.raw_split) travels as a `DataSource`: passed explicitly,
 * or for callers that do not thread it, set around them with `withDataSource`.
 */
import {AsyncLocalStorage} from 'node:async_hooks'
import {readdir, stat} from 'node:fs/promises'
import {basename, isAbsolute, join} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {RAW_FILE_PATTERNS, rawCandidates} from './raw-names.js'
import type {RawSplitSpec} from './split.js'
import {SPLITS} from './tasks.js'

export interface DataSource {
  /** A raw file to split: a name in the root or a path; or one per task. */
  file?: string | Record<string, string> | null
  /** Split fractions and seed for raw files (defaults: DEFAULT_RAW_SPLIT). */
  split?: Partial<RawSplitSpec> | null
}

const context = new AsyncLocalStorage<DataSource>()

/** Runs `fn` with `source` as the data source of every dataset it opens without an explicit one. */
export function withDataSource<T>(source: DataSource, fn: () => Promise<T>): Promise<T> {
  return context.run(source, fn)
}

/** The explicit source, else the one set by withDataSource, else none (defaults). */
export function currentDataSource(explicit?: DataSource | null): DataSource {
  return explicit ?? context.getStore() ?? {}
}

/** Other spellings of a split that PDEBench-derived data uses. */
const SPLIT_ALIASES: Record<string, string[]> = {val: ['valid'], valid: ['val']}

export type TaskFiles =
  | {kind: 'shards'; files: string[]}
  | {kind: 'raw'; file: string}
  | {kind: 'none'; files: []}

async function namesIn(root: string): Promise<string[]> {
  try {
    return await readdir(root)
  } catch {
    return []
  }
}

function shardsOf(names: string[], root: string, task: string, split: string): string[] {
  for (const s of [split, ...(SPLIT_ALIASES[split] ?? [])]) {
    const single = `${task}_${s}.h5`
    if (names.includes(single)) return [join(root, single)]
    const prefix = `${task}_${s}_`
    const shards = names.filter((n) => n.startsWith(prefix) && n.endsWith('.h5')).sort()
    if (shards.length > 0) return shards.map((n) => join(root, n))
  }
  return []
}

/** The raw file data.file names for `task`, if any. */
function namedFile(root: string, task: string, source: DataSource): string | null {
  const f = source.file
  const name = typeof f === 'string' ? f : f && typeof f === 'object' ? f[task] : undefined
  if (!name) return null
  return isAbsolute(name) ? name : join(root, name)
}

/** Where `task`'s `split` comes from in `root`; throws when the choice is ambiguous or the named file is missing. */
export async function resolveTaskFiles(root: string, task: string, split: string, source: DataSource = {}): Promise<TaskFiles> {
  const names = await namesIn(root)
  const named = namedFile(root, task, source)
  if (named) {
    try {
      if (!(await stat(named)).isFile()) throw new Error('not a file')
    } catch {
      const candidates = rawCandidates(names, task)
      throw new UserError(`data.file ${named} does not exist (task ${task}).`, {
        code: 'DATA_FILE_MISSING',
        hint: candidates.length ? `Raw PDEBench files for ${task} in ${root}: ${candidates.join(', ')}.` : `Fetch it into ${root} (ups data fetch URL --name ${basename(named)} --to ${root}) or fix data.file.`,
        exitCode: ExitCode.USAGE,
      })
    }
    return {kind: 'raw', file: named}
  }
  const own = shardsOf(names, root, task, split)
  if (own.length > 0) return {kind: 'shards', files: own}
  // Converted shards for another split: this root is sharded, so this split is simply missing.
  if (SPLITS.some((s) => shardsOf(names, root, task, s).length > 0)) return {kind: 'none', files: []}
  const candidates = rawCandidates(names, task)
  if (candidates.length === 1) return {kind: 'raw', file: join(root, candidates[0])}
  if (candidates.length > 1) {
    throw new UserError(`${root} holds ${candidates.length} raw PDEBench files for ${task}: ${candidates.join(', ')}. Which one to train on is not guessed.`, {
      code: 'DATA_RAW_AMBIGUOUS',
      hint: `Choose one in the config, e.g. \`data.file: ${candidates[0]}\` (or --set data.file=${candidates[0]}; \`ups data validate --file ${candidates[0]}\` without a config), or move the others away.`,
      exitCode: ExitCode.USAGE,
    })
  }
  return {kind: 'none', files: []}
}

/** The hint for a split that has no data: never `ups data generate` when real data is in the root. */
export async function missingDataHint(root: string, task: string): Promise<string> {
  const names = await namesIn(root)
  const raw = rawCandidates(names, task)
  if (raw.length > 0) {
    return `${root} holds the raw PDEBench file(s) ${raw.join(', ')}: remove the ${task}_*.h5 shards so the raw file is split into train/val/test, or name it with data.file.`
  }
  const example = RAW_FILE_PATTERNS[task]?.example
  const fetch = example ? `fetch the PDEBench file with \`ups data fetch URL --name ${example} --to ${root}\`` : `fetch it with \`ups data fetch SOURCE --to ${root}\``
  return `Put the data in ${root}: ${fetch}, or (synthetic data) \`ups data generate ${task} --out ${root}\`.`
}
