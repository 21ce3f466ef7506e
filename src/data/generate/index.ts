/**
 * `ups data generate`: real solver data in the PDEBench raw 1D layout, one `{task}_{split}.h5`
 * per split. Sample i of a split is drawn from its own integer seed (base seed + the split's
 * offset + i), so splits never share a seed and a sample does not depend on batch boundaries.
 */
import {stat} from 'node:fs/promises'
import {join} from 'node:path'

import {ExitCode, UserError} from '../../util/errors.js'
import {loadH5} from '../h5.js'
import {listShards} from '../pdebench.js'
import {createPdebenchWriter} from '../writer.js'
import {solveAdvection} from './advection.js'
import {solveBurgers} from './burgers.js'
import {cellCentres, randomSineModes, sineCellAverages} from './initial.js'
import {createRng} from './rng.js'
import {DEFAULT_SPLITS, type SplitFractions, checkFractions, splitCounts} from './splits.js'

export {parseSplits, splitCounts, DEFAULT_SPLITS, type SplitFractions} from './splits.js'
export {solveBurgers, type BurgersOptions} from './burgers.js'
export {solveAdvection, type AdvectionOptions} from './advection.js'
export {createRng, type Rng} from './rng.js'
export {randomSineModes, sineCellAverages, sinePointValue, cellCentres, type SineModes} from './initial.js'

export const GENERATOR_TASKS = ['burgers1d', 'advection1d'] as const
export type GeneratorTask = (typeof GENERATOR_TASKS)[number]

export interface GeneratorParams {
  task: GeneratorTask
  nx: number
  nt: number
  tEnd: number
  /** Burgers viscosity. */
  nu: number
  /** Advection speed. */
  beta: number
}

export interface GenerateOptions {
  task: string
  outDir: string
  /** Total over all splits (default 100). */
  samples?: number
  nx?: number
  nt?: number
  tEnd?: number
  nu?: number
  beta?: number
  seed?: number
  splits?: SplitFractions
  /** gzip level 0-9 (default 0: uncompressed, fastest to read). */
  compression?: number
  /** Write only these splits (the seeds of the others are still reserved). */
  only?: string[]
  onProgress?: (p: GenerateProgress) => void
}

export interface GenerateProgress {
  split: string
  done: number
  total: number
  overallDone: number
  overallTotal: number
}

export interface GeneratedFile {
  split: string
  path: string
  samples: number
  firstSeed: number
  bytes: number
}

export interface GenerateResult {
  task: GeneratorTask
  outDir: string
  params: GeneratorParams
  seed: number
  files: GeneratedFile[]
  totalSamples: number
}

export const SCHEMES: Record<GeneratorTask, string> = {
  burgers1d: 'finite volume: MUSCL-minmod + Rusanov flux, central diffusion, SSP-RK2, CFL 0.4',
  advection1d: 'exact solution u0(x - beta t), cell averages',
}

export function checkGeneratorTask(task: string): GeneratorTask {
  if ((GENERATOR_TASKS as readonly string[]).includes(task)) return task as GeneratorTask
  throw new UserError(`Cannot generate task "${task}".`, {
    code: 'DATA_UNKNOWN_TASK',
    hint: `Generators exist for ${GENERATOR_TASKS.join(', ')}; fetch other PDEBench tasks with \`ups data fetch\`.`,
    exitCode: ExitCode.USAGE,
  })
}

/** Output times: nt frames evenly from 0 to tEnd. */
export function frameTimes(nt: number, tEnd: number): Float64Array {
  return Float64Array.from({length: nt}, (_, k) => (nt === 1 ? 0 : (k * tEnd) / (nt - 1)))
}

/** One sample, frames [T, X] in float64. Pure. */
export function generateSample(params: GeneratorParams, seed: number): Float64Array {
  const modes = randomSineModes(createRng(seed >>> 0))
  const times = frameTimes(params.nt, params.tEnd)
  if (params.task === 'advection1d') return solveAdvection(modes, {nx: params.nx, times, beta: params.beta})
  return solveBurgers(sineCellAverages(modes, params.nx), {nu: params.nu, times})
}

function resolveParams(o: GenerateOptions): GeneratorParams {
  const p: GeneratorParams = {
    task: checkGeneratorTask(o.task),
    nx: o.nx ?? 256,
    nt: o.nt ?? 201,
    tEnd: o.tEnd ?? 2,
    nu: o.nu ?? 0.01,
    beta: o.beta ?? 0.1,
  }
  const bad = (m: string) => new UserError(m, {code: 'DATA_BAD_PARAMS', exitCode: ExitCode.USAGE, hint: 'See `ups data generate --help`.'})
  if (!Number.isInteger(p.nx) || p.nx < 8) throw bad(`--nx must be an integer >= 8 (got ${p.nx}).`)
  if (!Number.isInteger(p.nt) || p.nt < 2) throw bad(`--nt must be an integer >= 2 (got ${p.nt}).`)
  if (!(p.tEnd > 0)) throw bad(`the end time must be > 0 (got ${p.tEnd}).`)
  if (!(p.nu > 0)) throw bad(`--nu must be > 0 (got ${p.nu}).`)
  if (!Number.isFinite(p.beta)) throw bad(`--beta must be a number (got ${p.beta}).`)
  return p
}

export async function generateDataset(options: GenerateOptions): Promise<GenerateResult> {
  const params = resolveParams(options)
  const samples = options.samples ?? 100
  const seed = options.seed ?? 0
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new UserError(`--seed must be an integer in [0, 4294967295] (got ${seed}).`, {code: 'DATA_BAD_PARAMS', exitCode: ExitCode.USAGE})
  }
  const fractions = options.splits ?? DEFAULT_SPLITS
  checkFractions(fractions)
  const counts = splitCounts(samples, fractions)
  const wanted = Object.keys(counts).filter((s) => !options.only || options.only.includes(s))
  const overallTotal = wanted.reduce((a, s) => a + counts[s], 0)
  const dt = params.nt > 1 ? params.tEnd / (params.nt - 1) : params.tEnd
  const tCoord = Float64Array.from({length: params.nt + 1}, (_, k) => k * dt)
  const x = cellCentres(params.nx)
  const frame = params.nt * params.nx
  const batch = Math.max(1, Math.min(64, Math.floor((16 << 20) / (frame * 4))))
  const files: GeneratedFile[] = []
  let offset = 0
  let overallDone = 0
  for (const [split, count] of Object.entries(counts)) {
    const firstSeed = (seed + offset) >>> 0
    offset += count
    if (!wanted.includes(split)) continue
    const path = join(options.outDir, `${params.task}_${split}.h5`)
    const writer = await createPdebenchWriter(path, {
      nt: params.nt, nx: params.nx, x, t: tCoord, compression: options.compression,
      attrs: {
        generator: 'ups data generate', task: params.task, scheme: SCHEMES[params.task],
        params: JSON.stringify(params), seed: BigInt(seed), split, first_sample_seed: BigInt(firstSeed),
        ...(params.task === 'burgers1d' ? {nu: params.nu} : {beta: params.beta}),
      },
    })
    try {
      const buf = new Float32Array(batch * frame)
      let filled = 0
      for (let i = 0; i < count; i++) {
        buf.set(generateSample(params, firstSeed + i), filled * frame)
        filled++
        if (filled === batch || i === count - 1) {
          writer.append(buf.subarray(0, filled * frame))
          filled = 0
        }
        overallDone++
        options.onProgress?.({split, done: i + 1, total: count, overallDone, overallTotal})
      }
      await writer.close()
    } catch (error) {
      await writer.abort()
      throw error
    }
    files.push({split, path, samples: count, firstSeed, bytes: (await stat(path)).size})
  }
  return {task: params.task, outDir: options.outDir, params, seed, files, totalSamples: overallDone}
}

export interface EnsureOptions {
  root: string
  task: string
  samples: number
  nx?: number
  nt?: number
  nu?: number
  beta?: number
  tEnd?: number
  seed?: number
  splits?: SplitFractions
  compression?: number
  onProgress?: (p: GenerateProgress) => void
}

export interface EnsureResult {
  /** Splits written now. */
  generated: string[]
  /** Splits whose files were already there (left untouched). */
  existing: string[]
  files: Record<string, string[]>
}

/**
 * Generates the splits whose files are missing and leaves the others alone (idempotent).
 * An existing file that we generated with different parameters is an error rather than
 * silently stale data; files without our attributes (real PDEBench data) are accepted.
 */
export async function ensureGeneratedData(options: EnsureOptions): Promise<EnsureResult> {
  const params = resolveParams({...options, outDir: options.root})
  const fractions = options.splits ?? DEFAULT_SPLITS
  const counts = splitCounts(options.samples, fractions)
  const existing: string[] = []
  const missing: string[] = []
  const files: Record<string, string[]> = {}
  for (const split of Object.keys(counts)) {
    const found = await listShards(options.root, params.task, split)
    if (found.length > 0) {
      existing.push(split)
      files[split] = found
      for (const f of found) await checkExistingParams(f, params, options.seed ?? 0, counts[split])
    } else missing.push(split)
  }
  if (missing.length > 0) {
    const result = await generateDataset({...options, outDir: options.root, only: missing})
    for (const f of result.files) files[f.split] = [f.path]
  }
  return {generated: missing, existing, files}
}

async function checkExistingParams(path: string, want: GeneratorParams, seed: number, count: number): Promise<void> {
  const h5 = await loadH5()
  let file
  try {
    file = new h5.File(path, 'r')
  } catch {
    return // unreadable files are `ups data validate`'s business
  }
  try {
    const attrs = file.attrs
    if (!attrs.params || attrs.generator?.value !== 'ups data generate') return
    const have = JSON.parse(String(attrs.params.value)) as GeneratorParams
    const diffs: string[] = []
    for (const key of ['task', 'nx', 'nt', 'tEnd', want.task === 'burgers1d' ? 'nu' : 'beta'] as const) {
      if (have[key] !== want[key]) diffs.push(`${key} ${have[key]} (want ${want[key]})`)
    }
    if (attrs.seed && Number(attrs.seed.value) !== seed) diffs.push(`seed ${attrs.seed.value} (want ${seed})`)
    if (attrs.num_samples && Number(attrs.num_samples.value) !== count) diffs.push(`samples ${attrs.num_samples.value} (want ${count})`)
    if (diffs.length > 0) {
      throw new UserError(`${path} was generated with different parameters: ${diffs.join(', ')}.`, {
        code: 'DATA_PARAMS_MISMATCH',
        hint: 'Point data.root at a new folder, or move the old files away, then run again to regenerate.',
        exitCode: ExitCode.USAGE,
      })
    }
  } finally {
    file.close()
  }
}
