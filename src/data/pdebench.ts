/**
 * PDEBench HDF5 data: shard discovery and a streaming `Dataset` that reads hyperslabs only,
 * never more than `readBudgetBytes` per read (the wasm heap is capped at 2 GiB while real files
 * are ~8 GB). Samples come back channels-last: [n, T', X'(, Y'), C] as one Float32Array.
 * Little-endian float32 datasets stored contiguously or in unfiltered chunks are read straight
 * from the file (h5-raw.ts, no HDF5 library call); everything else goes through h5wasm.
 */
import {dirname} from 'node:path'

import {ExitCode, UserError} from '../util/errors.js'
import {type H5Dataset, type H5File, getDataset, openH5, readInto, toFloat32} from './h5.js'
import {type RawFile, openRawFile} from './h5-raw.js'
import {type FileLayout, type LayoutKind, describeFile, sliceRanges} from './layout.js'
import {checkDeclaredSize} from './storage.js'
import {RAW_FILE_PATTERNS} from './raw-names.js'
import {type DataSource, currentDataSource, missingDataHint, resolveTaskFiles} from './source.js'
import {type RawSplitInfo, normalizeSplitName, planRawSplit, splitView} from './split.js'
import {taskSpatialDims} from './tasks.js'

export {describeFile, FIELD_NAMES, type FileLayout, type LayoutKind} from './layout.js'
export {createPdebenchWriter, type PdebenchWriter, type WriterOptions} from './writer.js'
export {computeNormStats, loadOrComputeNormStats, normalizeInPlace, type NormStats} from './stats.js'

export const DEFAULT_READ_BUDGET_BYTES = 256 * 1024 * 1024

/**
 * The files of one task and split: `{root}/{task}_{split}.h5`, else the sorted
 * `{root}/{task}_{split}_*.h5` shards (concatenated along samples), else the task's raw PDEBench
 * file (split by sample index when opened; see source.ts). [] when none exist.
 */
export async function listShards(root: string, task: string, split: string, source?: DataSource | null): Promise<string[]> {
  const found = await resolveTaskFiles(root, task, split, currentDataSource(source))
  return found.kind === 'raw' ? [found.file] : found.files
}

/** Like listShards, but no files is a UserError saying where it looked. */
export async function findShards(root: string, task: string, split: string, source?: DataSource | null): Promise<string[]> {
  const files = await listShards(root, task, split, source)
  if (files.length === 0) {
    const example = RAW_FILE_PATTERNS[task]?.example
    throw new UserError(`No data for task "${task}" split "${split}" in ${root}: looked for ${task}_${split}.h5 and ${task}_${split}_*.h5${example ? `, or a raw PDEBench file such as ${example}` : ''}.`, {
      code: 'DATA_NOT_FOUND',
      hint: await missingDataHint(root, task),
      exitCode: ExitCode.USAGE,
    })
  }
  return files
}

export interface DatasetOptions {
  /** Keep every `timeStride`-th frame (default 1). */
  timeStride?: number
  /** Crop every spatial dimension to this many points (a patch); default: the whole grid. */
  patchSize?: number | null
  /** Largest single hyperslab read in bytes (default 256 MB). */
  readBudgetBytes?: number
  /** Per-channel statistics applied as (x - mean) / std to every sample read. */
  normalize?: {mean: number[]; std: number[]} | null
  /**
   * Read contiguous or unfiltered-chunked float32 datasets straight from the file, without the
   * HDF5 library (default true). Other datasets always go through the library.
   */
  rawReads?: boolean
  /** Which raw file and split plan (the config's data.file / data.raw_split); see source.ts. */
  source?: DataSource | null
}

/** How many hyperslab reads went each way since the Dataset was opened. */
export interface ReadStats {
  /** Read by the raw path (file bytes straight into the output). */
  raw: number
  /** Read through the HDF5 library (h5wasm). */
  library: number
}

export interface ReadOptions {
  /** Start of the patch in each spatial dimension (default 0); the engine draws these. */
  patchOrigin?: number[]
  /** Reuse this buffer (at least n * sampleSize values) instead of allocating: faster in loops. */
  out?: Float32Array
}

export interface SampleBatch {
  data: Float32Array
  /** [n, T', X'(, Y'), C] */
  shape: number[]
}

export interface Dataset {
  root: string
  task: string
  split: string
  files: string[]
  /** What each file holds (its layout, sizes and raw coordinates). */
  layouts: FileLayout[]
  layout: LayoutKind
  numSamples: number
  /** Frames per sample after the time stride. */
  numFrames: number
  /** Spatial sizes as stored, and after the patch crop. */
  fullSpatialShape: number[]
  spatialShape: number[]
  channels: number
  channelNames: string[]
  /** [T', X'(, Y'), C] */
  sampleShape: number[]
  /** Coordinates when the files carry them: `t` after the stride; `x`/`y` uncropped. */
  t: Float32Array | null
  x: Float32Array | null
  y: Float32Array | null
  readSamples(start: number, end: number, options?: ReadOptions): SampleBatch
  batches(batchSize: number, range?: {start?: number; end?: number}): Generator<SampleBatch & {start: number; end: number}>
  /** Which read path served the reads so far (diagnostics; optional for in-memory fakes). */
  readStats?: ReadStats
  /** Set when this is one split of a raw PDEBench file: which samples of which file. */
  rawSplit?: RawSplitInfo
  close(): void
}

interface Shard {
  file: H5File
  raw: RawFile | null
  layout: FileLayout
  offset: number
}

/** Opens every shard of a task and split; they must agree on layout, frames, grid and channels. */
export async function openDataset(root: string, task: string, split: string, options: DatasetOptions = {}): Promise<Dataset> {
  taskSpatialDims(task)
  const source = currentDataSource(options.source)
  const found = await resolveTaskFiles(root, task, split, source)
  if (found.kind !== 'raw') return openDatasetFiles(await findShards(root, task, split, source), task, options, {root, split})
  const name = normalizeSplitName(split)
  const base = await openDatasetFiles([found.file], task, options, {root, split: name})
  try {
    const plan = planRawSplit(base.numSamples, source.split ?? {})
    return splitView(base, {file: found.file, split: name, total: plan.total, ranges: plan.ranges[name], spec: plan.spec, method: plan.method})
  } catch (error) {
    base.close()
    throw error
  }
}

/** The same over an explicit list of files (concatenated along samples in that order). */
export async function openDatasetFiles(
  files: string[],
  task: string,
  options: DatasetOptions = {},
  label: {root?: string; split?: string} = {},
): Promise<Dataset> {
  const d = taskSpatialDims(task)
  const root = label.root ?? (files[0] ? dirname(files[0]) : '.')
  const split = label.split ?? ''
  const timeStride = options.timeStride ?? 1
  const budget = options.readBudgetBytes ?? DEFAULT_READ_BUDGET_BYTES
  if (!Number.isInteger(timeStride) || timeStride < 1) throw usage(`timeStride must be a positive integer (got ${timeStride}).`)
  if (!(budget > 0)) throw usage(`readBudgetBytes must be positive (got ${budget}).`)
  if (files.length === 0) throw usage('no files to open.')
  const shards: Shard[] = []
  let offset = 0
  try {
    for (const path of files) {
      const file = await openH5(path)
      let layout: FileLayout
      try {
        layout = describeFile(file, path, d)
      } catch (error) {
        file.close()
        throw error
      }
      const raw = options.rawReads !== false ? openRawFile(path) : null
      // Parse where a single-dataset file's data lies now, as HDF5 does when it opens a dataset.
      if (raw && (layout.kind === 'tensor' || layout.kind === 'data')) raw.locate(layout.datasets[0])
      try {
        checkDeclaredSize(layout, raw)
      } catch (error) {
        raw?.close()
        file.close()
        throw error
      }
      shards.push({file, raw, layout, offset})
      offset += shards[shards.length - 1].layout.numSamples
    }
  } catch (error) {
    closeShards(shards)
    throw error
  }
  const first = shards[0].layout
  for (const s of shards.slice(1)) {
    const l = s.layout
    if (l.kind !== first.kind || l.numFrames !== first.numFrames || l.spatial.join() !== first.spatial.join() || l.channels !== first.channels) {
      closeShards(shards)
      throw new UserError(
        `Shard ${l.path} (${l.kind}, T=${l.numFrames}, grid ${l.spatial.join('x')}, C=${l.channels}) does not match ${first.path} (${first.kind}, T=${first.numFrames}, grid ${first.spatial.join('x')}, C=${first.channels}).`,
        {code: 'DATA_SHARD_MISMATCH', hint: 'All shards of a split must come from the same dataset; remove the stray file.', exitCode: ExitCode.USAGE},
      )
    }
  }
  const patch = options.patchSize ?? null
  if (patch !== null && (!Number.isInteger(patch) || patch < 1 || first.spatial.some((n) => patch > n))) {
    throw usage(`patchSize ${patch} does not fit the grid ${first.spatial.join('x')}.`)
  }
  const spatialShape = first.spatial.map((n) => patch ?? n)
  const numFrames = Math.ceil(first.numFrames / timeStride)
  const C = first.channels
  const frameSize = spatialShape.reduce((p, n) => p * n, 1) * C
  const sampleSize = numFrames * frameSize
  const norm = options.normalize ?? null
  if (norm && (norm.mean.length !== C || norm.std.length !== C)) throw usage(`normalisation statistics have ${norm.mean.length} channels; the data has ${C}.`)

  const stats: ReadStats = {raw: 0, library: 0}
  let fieldScratch = new Float32Array(0)
  // The raw path when it handles this dataset and selection, else the library (same bytes).
  const readOne = (shard: Shard, name: string, ranges: ReturnType<typeof sliceRanges>['ranges'], out: Float32Array, at: number) => {
    const n = shard.raw ? shard.raw.readInto(name, ranges, out, at) : -1
    if (n >= 0) {
      stats.raw++
      return n
    }
    const ds = getDataset(shard.file, name)
    if (!ds) throw new UserError(`${shard.layout.path}: dataset "${name}" is missing.`, {code: 'DATA_MISSING_DATASET', exitCode: ExitCode.USAGE})
    stats.library++
    return readInto(ds, ranges, out, at)
  }

  /** Reads samples [a, b), frames [f0, f1) of one shard into out at `at`; returns the values written. */
  const readBlock = (shard: Shard, a: number, b: number, f0: number, f1: number, origin: number[], out: Float32Array, at: number): number => {
    const l = shard.layout
    const time: [number, number, number] = [f0 * timeStride, Math.min(l.numFrames, (f1 - 1) * timeStride + 1), timeStride]
    const space = spatialShape.map((n, i) => [origin[i], origin[i] + n] as [number, number])
    if (l.kind === 'tensor' || l.kind === 'data') {
      const name = l.datasets[0]
      const ranges = sliceRanges(l.kind, a, b, time, space).ranges
      return readOne(shard, name, ranges, out, at)
    } else if (l.kind === 'fields') {
      // One field per read; interleave into channels-last.
      let written = 0
      const ranges = sliceRanges('fields', a, b, time, space).ranges
      for (let c = 0; c < C; c++) {
        const name = l.datasets[c]
        let values: Float32Array
        const count = ((b - a) * (f1 - f0) * frameSize) / C
        if (fieldScratch.length < count) fieldScratch = new Float32Array(count)
        const n = shard.raw ? shard.raw.readInto(name, ranges, fieldScratch, 0) : -1
        if (n >= 0) {
          values = fieldScratch.subarray(0, n)
          stats.raw++
        } else {
          values = toFloat32((getDataset(shard.file, name) as H5Dataset).slice(ranges))
          stats.library++
        }
        for (let j = 0; j < values.length; j++) out[at + j * C + c] = values[j]
        written += values.length
      }
      return written
    } else {
      const per = (f1 - f0) * frameSize
      let written = 0
      for (let i = a; i < b; i++) {
        const name = l.datasets[i]
        written += readOne(shard, name, sliceRanges('groups', i, i + 1, time, space).ranges, out, at + (i - a) * per)
      }
      return written
    }
  }

  const dataset: Dataset = {
    root, task, split, files, layouts: shards.map((sh) => sh.layout), layout: first.kind, numSamples: offset, numFrames,
    fullSpatialShape: first.spatial, spatialShape, channels: C, channelNames: first.channelNames,
    sampleShape: [numFrames, ...spatialShape, C],
    t: first.coords.t ? Float32Array.from(first.coords.t.filter((_, i) => i % timeStride === 0)) : null,
    x: first.coords.x ? Float32Array.from(first.coords.x) : null,
    y: first.coords.y ? Float32Array.from(first.coords.y) : null,

    readSamples(start, end, readOptions = {}) {
      if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > offset || start > end) {
        throw usage(`sample range [${start}, ${end}) is outside [0, ${offset}).`)
      }
      const origin = readOptions.patchOrigin ?? spatialShape.map(() => 0)
      origin.forEach((o, i) => {
        if (!Number.isInteger(o) || o < 0 || o + spatialShape[i] > first.spatial[i]) throw usage(`patch origin ${origin.join(',')} puts the patch outside the grid ${first.spatial.join('x')}.`)
      })
      const bytesPerSample = sampleSize * 4
      const need = (end - start) * sampleSize
      if (readOptions.out && readOptions.out.length < need) throw usage(`the output buffer holds ${readOptions.out.length} values; ${need} are needed.`)
      // A fresh array need not be zeroed (about 2x faster for large batches): every value is
      // overwritten, which the count check below makes sure of.
      const out = readOptions.out ? readOptions.out.subarray(0, need) : new Float32Array(Buffer.allocUnsafeSlow(need * 4).buffer, 0, need)
      let written = 0
      for (const shard of shards) {
        const lo = Math.max(start, shard.offset)
        const hi = Math.min(end, shard.offset + shard.layout.numSamples)
        if (lo >= hi) continue
        if (bytesPerSample <= budget) {
          const step = Math.max(1, Math.floor(budget / bytesPerSample))
          for (let a = lo; a < hi; a += step) {
            const b = Math.min(hi, a + step)
            written += readBlock(shard, a - shard.offset, b - shard.offset, 0, numFrames, origin, out, (a - start) * sampleSize)
          }
        } else {
          // One sample is larger than the budget: read it a few frames at a time.
          const framesPerRead = Math.max(1, Math.floor(budget / (frameSize * 4)))
          for (let i = lo; i < hi; i++) {
            for (let f = 0; f < numFrames; f += framesPerRead) {
              const f1 = Math.min(numFrames, f + framesPerRead)
              written += readBlock(shard, i - shard.offset, i - shard.offset + 1, f, f1, origin, out, (i - start) * sampleSize + f * frameSize)
            }
          }
        }
      }
      if (written !== need) throw new Error(`internal error: read ${written} of ${need} values for samples [${start}, ${end})`)
      if (norm) normalizeChannels(out, norm, C)
      return {data: out, shape: [end - start, numFrames, ...spatialShape, C]}
    },

    *batches(batchSize, range = {}) {
      const s0 = range.start ?? 0
      const s1 = range.end ?? offset
      if (!Number.isInteger(batchSize) || batchSize < 1) throw usage(`batch size must be a positive integer (got ${batchSize}).`)
      for (let a = s0; a < s1; a += batchSize) {
        const b = Math.min(s1, a + batchSize)
        yield {...dataset.readSamples(a, b), start: a, end: b}
      }
    },

    readStats: stats,

    close() {
      closeShards(shards)
    },
  }
  return dataset
}

function closeShards(shards: Shard[]): void {
  for (const s of shards) {
    s.raw?.close()
    s.file.close()
  }
}

function normalizeChannels(data: Float32Array, norm: {mean: number[]; std: number[]}, C: number): void {
  const inv = norm.std.map((s) => (s > 0 ? 1 / s : 1))
  for (let j = 0; j < data.length; j++) {
    const c = j % C
    data[j] = (data[j] - norm.mean[c]) * inv[c]
  }
}

function usage(message: string): UserError {
  return new UserError(message, {code: 'DATA_BAD_REQUEST', exitCode: ExitCode.USAGE})
}
