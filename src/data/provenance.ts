/**
 * What a run read, for its metadata.json: per task, the shard files, or the raw file (size,
 * mtime, a hash of its first MiB) with the split plan (fractions, seed, method, counts, ranges),
 * enough to rebuild the same train/val/test on another machine.
 */
import {createHash} from 'node:crypto'
import {open, stat} from 'node:fs/promises'
import {basename} from 'node:path'

import {sha256} from '../util/hash.js'
import {openDataset} from './pdebench.js'
import {type DataSource, currentDataSource, resolveTaskFiles} from './source.js'
import {type IndexRanges, type RawSplitName, planRawSplit} from './split.js'

const HEAD_BYTES = 1 << 20
/** Longer range lists are recorded as a hash (a seeded split of 10000 samples has thousands). */
const MAX_RANGES_LISTED = 16

export interface FileIdentity {
  path: string
  size: number
  mtime: string
  /** sha256 of the first MiB (the superblock, metadata and the start of the data). */
  head_sha256: string
}

export type TaskDataSource =
  | {task: string; kind: 'shards'; splits: Record<string, FileIdentity[]>}
  | {
      task: string; kind: 'raw'; file: FileIdentity; samples: number; method: string; val: number; test: number; seed: number | null
      counts: Record<RawSplitName, number>
      ranges: Record<RawSplitName, IndexRanges | {sha256: string; count: number}>
    }

export async function fileIdentity(path: string): Promise<FileIdentity> {
  const s = await stat(path)
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(Math.min(HEAD_BYTES, s.size))
    await fh.read(buf, 0, buf.length, 0)
    return {path, size: s.size, mtime: s.mtime.toISOString(), head_sha256: createHash('sha256').update(buf).digest('hex')}
  } finally {
    await fh.close()
  }
}

export async function describeDataSources(root: string, tasks: string[], explicit?: DataSource | null): Promise<TaskDataSource[]> {
  const source = currentDataSource(explicit)
  const out: TaskDataSource[] = []
  for (const task of tasks) {
    const found = await resolveTaskFiles(root, task, 'train', source)
    if (found.kind === 'raw') {
      const ds = await openDataset(root, task, 'train', {source})
      const total = ds.rawSplit?.total ?? ds.numSamples
      ds.close()
      const plan = planRawSplit(total, source.split ?? {})
      const ranges = Object.fromEntries(
        Object.entries(plan.ranges).map(([k, r]) => [k, r.length <= MAX_RANGES_LISTED ? r : {sha256: sha256(JSON.stringify(r)), count: r.length}]),
      ) as Record<RawSplitName, IndexRanges | {sha256: string; count: number}>
      out.push({task, kind: 'raw', file: await fileIdentity(found.file), samples: total, method: plan.method, ...plan.spec, counts: plan.counts, ranges})
      continue
    }
    const splits: Record<string, FileIdentity[]> = {}
    for (const split of ['train', 'val', 'test']) {
      const f = await resolveTaskFiles(root, task, split, source)
      if (f.kind === 'shards') splits[split] = await Promise.all(f.files.map(fileIdentity))
    }
    out.push({task, kind: 'shards', splits})
  }
  return out
}

/** One line per task for logs: where each split comes from. */
export function renderDataSources(sources: TaskDataSource[]): string {
  return sources
    .map((s) => s.kind === 'raw'
      ? `${s.task}: ${basename(s.file.path)} (${s.samples} samples) split by sample index (${s.method}${s.seed === null ? '' : `, seed ${s.seed}`}; val ${s.val}, test ${s.test}): train ${s.counts.train}, val ${s.counts.val}, test ${s.counts.test}`
      : `${s.task}: ${Object.entries(s.splits).map(([k, f]) => `${k} ${f.map((x) => basename(x.path)).join(', ')}`).join('; ')}`)
    .join('\n')
}
