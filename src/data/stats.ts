/**
 * Per-channel normalisation statistics, computed in one streamed pass over the TRAIN split only
 * and applied to every split (normalising each split with its own statistics leaks test data).
 * Cached beside the data in `{task}_norm_stats.json`, keyed by each train file's size and mtime
 * (and, for a raw file split by index, the train split's sample ranges).
 */
import {readFile, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {writeJsonAtomic} from '../util/fs.js'
import {sha256} from '../util/hash.js'
import {DEFAULT_READ_BUDGET_BYTES, findShards, openDataset} from './pdebench.js'
import {emptySplitError} from './storage.js'
import {type DataSource, currentDataSource, resolveTaskFiles} from './source.js'

export interface NormStats {
  task: string
  split: 'train'
  channels: number
  channelNames: string[]
  mean: number[]
  std: number[]
  /** Values per channel that went into the statistics. */
  count: number
  /** What the statistics were computed from; a mismatch means they are stale. */
  files: Array<{name: string; size: number; mtimeMs: number}>
}

const CACHE_VERSION = 1

export function normStatsPath(root: string, task: string): string {
  return join(root, `${task}_norm_stats.json`)
}

async function fileKeys(root: string, task: string, source: DataSource): Promise<NormStats['files']> {
  const files = await findShards(root, task, 'train', source)
  // A raw file's train split depends on the split plan: key on its sample ranges too.
  let view = ''
  if ((await resolveTaskFiles(root, task, 'train', source)).kind === 'raw') {
    const ds = await openDataset(root, task, 'train', {source})
    const ranges = ds.rawSplit?.ranges ?? []
    view = ranges.length <= 4 ? `#${ranges.map(([a, b]) => `${a}-${b}`).join(',')}` : `#sha256:${sha256(JSON.stringify(ranges)).slice(0, 16)}`
    ds.close()
  }
  return Promise.all(
    files.map(async (f) => {
      const s = await stat(f)
      return {name: basename(f) + view, size: s.size, mtimeMs: Math.floor(s.mtimeMs)}
    }),
  )
}

/** One streamed pass; merges per-batch (mean, M2) in float64 (Chan et al.) so large N stays accurate. */
export async function computeNormStats(root: string, task: string, options: {readBudgetBytes?: number; source?: DataSource | null} = {}): Promise<NormStats> {
  const source = currentDataSource(options.source)
  const files = await fileKeys(root, task, source)
  const budget = options.readBudgetBytes ?? DEFAULT_READ_BUDGET_BYTES
  const ds = await openDataset(root, task, 'train', {readBudgetBytes: budget, source})
  try {
    const C = ds.channels
    const mean = new Float64Array(C)
    const m2 = new Float64Array(C)
    let n = 0
    const sampleBytes = ds.sampleShape.reduce((p, v) => p * v, 1) * 4
    const batch = Math.max(1, Math.floor(budget / sampleBytes))
    for (const {data} of ds.batches(batch)) {
      const nb = data.length / C
      const bMean = new Float64Array(C)
      const bM2 = new Float64Array(C)
      for (let j = 0; j < data.length; j++) bMean[j % C] += data[j]
      for (let c = 0; c < C; c++) bMean[c] /= nb
      for (let j = 0; j < data.length; j++) {
        const dv = data[j] - bMean[j % C]
        bM2[j % C] += dv * dv
      }
      for (let c = 0; c < C; c++) {
        const delta = bMean[c] - mean[c]
        const total = n + nb
        mean[c] += (delta * nb) / total
        m2[c] += bM2[c] + (delta * delta * n * nb) / total
      }
      n += nb
    }
    if (n === 0) throw emptySplitError(task, 'train', root)
    return {
      task, split: 'train', channels: C, channelNames: ds.channelNames,
      mean: Array.from(mean),
      std: Array.from(m2, (v) => Math.sqrt(n > 0 ? v / n : 0)),
      count: n, files,
    }
  } finally {
    ds.close()
  }
}

/** The cached statistics when they match the train files on disk; otherwise computes and caches them. */
export async function loadOrComputeNormStats(
  root: string,
  task: string,
  options: {readBudgetBytes?: number; source?: DataSource | null} = {},
): Promise<NormStats & {cached: boolean}> {
  const path = normStatsPath(root, task)
  const source = currentDataSource(options.source)
  const keys = await fileKeys(root, task, source)
  try {
    const cached = JSON.parse(await readFile(path, 'utf8')) as NormStats & {version?: number}
    if (cached.version === CACHE_VERSION && JSON.stringify(cached.files) === JSON.stringify(keys)) {
      const {version: _v, ...stats} = cached
      return {...stats, cached: true}
    }
  } catch {
    // missing or unreadable cache: recompute
  }
  const stats = await computeNormStats(root, task, {...options, source})
  await writeJsonAtomic(path, {version: CACHE_VERSION, ...stats})
  return {...stats, cached: false}
}

/** (x - mean) / std per channel, channels-last, in place. */
export function normalizeInPlace(data: Float32Array, stats: Pick<NormStats, 'mean' | 'std'>): Float32Array {
  const C = stats.mean.length
  const inv = stats.std.map((s) => (s > 0 ? 1 / s : 1))
  for (let j = 0; j < data.length; j++) {
    const c = j % C
    data[j] = (data[j] - stats.mean[c]) * inv[c]
  }
  return data
}
