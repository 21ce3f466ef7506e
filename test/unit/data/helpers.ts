import {mkdir, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {loadH5} from '../../../src/data/h5.js'

export async function tempDir(): Promise<{dir: string; cleanup: () => Promise<void>}> {
  const dir = await mkdtemp(join(tmpdir(), 'ups-data-'))
  return {dir, cleanup: () => rm(dir, {recursive: true, force: true})}
}

export type DatasetSpec = {data: Float32Array | Float64Array | Int32Array; shape: number[]}

/** Writes an HDF5 file with the given datasets (names may contain groups: "0000/data"). */
export async function writeH5(path: string, datasets: Record<string, DatasetSpec>): Promise<void> {
  const h5 = await loadH5()
  await mkdir(dirname(path), {recursive: true})
  const f = new h5.File(path, 'w')
  try {
    for (const [name, spec] of Object.entries(datasets)) {
      const parts = name.split('/')
      let group: InstanceType<typeof h5.Group> = f
      for (const p of parts.slice(0, -1)) group = (group.get(p) as InstanceType<typeof h5.Group> | null) ?? group.create_group(p)
      group.create_dataset({name: parts[parts.length - 1], data: spec.data, shape: spec.shape})
    }
  } finally {
    f.close()
  }
}

/** 0, 1, 2, ... as float32 in the given shape. */
export function iota(shape: number[], start = 0): {data: Float32Array; shape: number[]} {
  const n = shape.reduce((a, b) => a * b, 1)
  return {data: Float32Array.from({length: n}, (_, i) => start + i), shape}
}

export function linspace(n: number, lo = 0, hi = 1): {data: Float32Array; shape: number[]} {
  return {data: Float32Array.from({length: n}, (_, i) => lo + ((hi - lo) * i) / Math.max(1, n - 1)), shape: [n]}
}
