/**
 * What a run will need from the machine, said before it starts: the training data against
 * data.memory_budget_mb and the machine's RAM (larger data streams from disk), the latent cache's
 * size on disk, and the free space where the cache and the run directory go.
 */
import {dirname, resolve} from 'node:path'

import {resolveArchitecture, type UpsConfig} from '../config/index.js'
import {memoryBudgetBytes, streamsFromDisk} from '../training/blocks.js'
import type {DataShape} from './estimate-math.js'

/** The machine, as the caller measures it (os.totalmem, statfs). */
export interface SystemProbe {
  totalMemBytes(): number
  /** Free bytes for this user on the filesystem holding `path` (null when unknown). */
  freeDiskBytes(path: string): Promise<number | null>
}

export interface ResourceReport {
  /** Frames of every split in memory (float32, after max_samples and the time stride). */
  dataBytes: number
  budgetBytes: number
  streamed: boolean
  machineRamBytes: number | null
  latentCache: {dir: string; bytes: number; dtype: string; streamed: boolean} | null
  disk: Array<{path: string; freeBytes: number | null}>
  warnings: string[]
}

const gb = (b: number): string => `${(b / 1e9).toFixed(b < 1e8 ? 3 : 1)} GB`

export async function resourceReport(config: UpsConfig, shape: DataShape, o: {cwd: string; runsRoot: string; system?: SystemProbe; latentStages: boolean}): Promise<ResourceReport> {
  const warnings: string[] = []
  const samples = shape.trainSamples + shape.valSamples + shape.evalSamples
  const frameFloats = shape.grid.reduce((a, b) => a * b, 1) * shape.channels
  const trajBytes = shape.frames * frameFloats * 4
  const dataBytes = samples * trajBytes
  const budgetBytes = memoryBudgetBytes(config.data.memory_budget_mb)
  // Decided as training decides it: all splits fit the budget, and none is too large for one array.
  const streamed = streamsFromDisk([shape.trainSamples, shape.valSamples, shape.evalSamples].map((n) => n * trajBytes), budgetBytes)
  const ram = o.system?.totalMemBytes() ?? null
  if (streamed) warnings.push(`the data takes ${gb(dataBytes)} in memory, more than data.memory_budget_mb (${gb(budgetBytes)}): training streams it from disk in blocks`)
  if (trajBytes * 4 > budgetBytes) {
    warnings.push(`one trajectory takes ${gb(trajBytes)}; streaming needs four within data.memory_budget_mb (${gb(budgetBytes)}): training will stop. Raise data.memory_budget_mb or training.time_stride`)
  }
  const resident = Math.min(dataBytes, budgetBytes)
  if (ram !== null && resident > 0.8 * ram) {
    warnings.push(`training holds up to ${gb(resident)} of data (data.memory_budget_mb ${gb(budgetBytes)}), more than 80% of this machine's ${gb(ram)} RAM: lower data.memory_budget_mb`)
  }
  let latentCache: ResourceReport['latentCache'] = null
  const disk: ResourceReport['disk'] = []
  const free = async (path: string): Promise<number | null> => {
    // The nearest folder that exists: the cache and run folders may not be made yet.
    let p = path
    for (;;) {
      const f = await o.system?.freeDiskBytes(p).catch(() => null)
      if (f !== null && f !== undefined) return f
      const parent = dirname(p)
      if (parent === p || !o.system) return null
      p = parent
    }
  }
  if (o.latentStages) {
    const {tokens, dim} = resolveArchitecture(config).latent
    const dtype = config.training?.latent_cache_dtype ?? 'float32'
    const bytes = samples * shape.frames * tokens * dim * (dtype === 'float16' ? 2 : 4)
    const dir = resolve(o.cwd, config.training?.latent_cache_dir ?? o.runsRoot)
    latentCache = {dir, bytes, dtype, streamed: streamsFromDisk([bytes], budgetBytes)}
    if (latentCache.streamed) warnings.push(`the latent cache takes ${gb(bytes)} (${dtype}), more than data.memory_budget_mb: the latent stages read it from disk in blocks`)
    const f = await free(dir)
    disk.push({path: dir, freeBytes: f})
    if (f !== null && f < bytes) warnings.push(`the latent cache needs ${gb(bytes)} on disk but only ${gb(f)} is free at ${dir}: free space, or set training.latent_cache_dtype float16 (half the size), a larger training.time_stride or data.max_samples`)
  }
  const runs = resolve(o.cwd, o.runsRoot)
  if (!disk.some((d) => d.path === runs)) {
    const f = await free(runs)
    disk.push({path: runs, freeBytes: f})
    if (f !== null && f < 1e9) warnings.push(`only ${gb(f)} free at ${runs} for checkpoints and logs`)
  }
  return {dataBytes, budgetBytes, streamed, machineRamBytes: ram, latentCache, disk, warnings}
}
