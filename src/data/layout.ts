/**
 * Recognises the four PDEBench layouts in an open HDF5 file and says how to slice it:
 *  - `tensor`: raw 1D files, `tensor` [N, T, X(, Y)], `x-coordinate`, `t-coordinate` [T+1]
 *  - `fields`: raw 2D/CFD files, one dataset per field (`density`, `Vx`, ...) [N, T, X(, Y)]
 *  - `groups`: one group per sample, `0000/data` [T, X(, Y), C], `0000/grid/{x,y,t}`
 *  - `data`:   the upstream project's converted shards, `data` [N, T, X(, Y), C]
 */
import {ExitCode, UserError} from '../util/errors.js'
import {type H5Dataset, type H5File, getDataset, getGroup, isFloatDataset, toFloat64} from './h5.js'

export type LayoutKind = 'tensor' | 'fields' | 'groups' | 'data'

/** PDEBench's per-field dataset names, in the channel order we use. */
export const FIELD_NAMES = ['density', 'Vx', 'Vy', 'Vz', 'pressure'] as const

export interface FileLayout {
  path: string
  kind: LayoutKind
  numSamples: number
  /** Frames per sample as stored (T). */
  numFrames: number
  /** Spatial sizes as stored ([X] or [X, Y]). */
  spatial: number[]
  channels: number
  channelNames: string[]
  /** The data datasets: `tensor`, `data`, the field names, or one `NNNN/data` per sample. */
  datasets: string[]
  /** Coordinates when the file has them; `t` trimmed to T frames. */
  coords: {t: Float64Array | null; x: Float64Array | null; y: Float64Array | null}
  /** The time coordinate as stored (PDEBench raw files keep T+1 entries). */
  tStored: Float64Array | null
  /** Names of the coordinate datasets found, for validation messages. */
  coordNames: {t?: string; x?: string; y?: string}
}

function layoutError(path: string, message: string, code = 'DATA_BAD_LAYOUT'): UserError {
  return new UserError(`${path}: ${message}`, {
    code,
    hint: 'Check that the file belongs to this task; `h5ls -r FILE` lists what it holds. Re-fetch or regenerate it if it is damaged.',
    exitCode: ExitCode.USAGE,
  })
}

function checkDataset(path: string, name: string, ds: H5Dataset, rank: number, what: string): number[] {
  const shape = ds.shape ?? []
  if (shape.length !== rank) {
    throw layoutError(path, `dataset "${name}" has rank ${shape.length} (shape [${shape.join(', ')}]); expected rank ${rank} ${what}.`, 'DATA_WRONG_RANK')
  }
  if (!isFloatDataset(ds)) {
    throw layoutError(path, `dataset "${name}" has dtype ${JSON.stringify(ds.dtype)}; expected a float dtype (float32 or float64).`, 'DATA_WRONG_DTYPE')
  }
  return shape
}

function readCoord(file: H5File, names: string[]): {values: Float64Array | null; name?: string} {
  for (const name of names) {
    const ds = getDataset(file, name)
    if (ds) return {values: toFloat64(ds.value), name}
  }
  return {values: null}
}

function sampleGroupNames(file: H5File): string[] {
  return file
    .keys()
    .filter((k) => /^\d+$/.test(k))
    .sort((a, b) => Number(a) - Number(b))
}

/**
 * Describes one file. `spatialDims` (from the task) fixes the expected ranks; every problem is
 * a UserError naming the file, the dataset and what was expected.
 */
export function describeFile(file: H5File, path: string, spatialDims: number): FileLayout {
  const d = spatialDims
  const dimNames = d === 1 ? '[N, T, X]' : d === 2 ? '[N, T, X, Y]' : '[N, T, X, Y, Z]'
  const coords = () => {
    const t = readCoord(file, ['t-coordinate'])
    const x = readCoord(file, ['x-coordinate'])
    const y = readCoord(file, ['y-coordinate'])
    return {t, x, y}
  }
  const finish = (base: Omit<FileLayout, 'coords' | 'coordNames' | 'tStored'>, c = coords()): FileLayout => ({
    ...base,
    coords: {t: c.t.values ? c.t.values.subarray(0, base.numFrames) : null, x: c.x.values, y: c.y.values},
    tStored: c.t.values,
    coordNames: {t: c.t.name, x: c.x.name, y: c.y.name},
  })

  const tensor = getDataset(file, 'tensor')
  if (tensor) {
    const shape = checkDataset(path, 'tensor', tensor, 2 + d, dimNames)
    return finish({path, kind: 'tensor', numSamples: shape[0], numFrames: shape[1], spatial: shape.slice(2), channels: 1, channelNames: ['u'], datasets: ['tensor']})
  }
  const data = getDataset(file, 'data')
  if (data) {
    const shape = checkDataset(path, 'data', data, 3 + d, dimNames.replace(']', ', C]'))
    const channels = shape[shape.length - 1]
    return finish({
      path, kind: 'data', numSamples: shape[0], numFrames: shape[1], spatial: shape.slice(2, 2 + d), channels,
      channelNames: Array.from({length: channels}, (_, i) => `c${i}`), datasets: ['data'],
    })
  }
  const fields = FIELD_NAMES.filter((n) => getDataset(file, n) !== null)
  if (fields.length > 0) {
    let first: number[] | undefined
    for (const name of fields) {
      const shape = checkDataset(path, name, getDataset(file, name)!, 2 + d, dimNames)
      if (first && shape.join() !== first.join()) {
        throw layoutError(path, `field "${name}" has shape [${shape.join(', ')}] but "${fields[0]}" has [${first.join(', ')}]; all fields must match.`, 'DATA_WRONG_SHAPE')
      }
      first ??= shape
    }
    return finish({path, kind: 'fields', numSamples: first![0], numFrames: first![1], spatial: first!.slice(2), channels: fields.length, channelNames: [...fields], datasets: [...fields]})
  }
  const groups = sampleGroupNames(file)
  if (groups.length > 0) {
    const name = `${groups[0]}/data`
    const ds = getDataset(file, name)
    if (!ds) throw layoutError(path, `group "${groups[0]}" has no dataset "data"; expected ${name} [T, X${d > 1 ? ', Y' : ''}, C].`, 'DATA_MISSING_DATASET')
    const shape = checkDataset(path, name, ds, 2 + d, `[T, X${d > 1 ? ', Y' : ''}, C]`)
    const g = getGroup(file, `${groups[0]}/grid`)
    const c = g
      ? {t: readCoord(file, [`${groups[0]}/grid/t`]), x: readCoord(file, [`${groups[0]}/grid/x`]), y: readCoord(file, [`${groups[0]}/grid/y`])}
      : coords()
    const channels = shape[shape.length - 1]
    return finish(
      {
        path, kind: 'groups', numSamples: groups.length, numFrames: shape[0], spatial: shape.slice(1, 1 + d), channels,
        channelNames: Array.from({length: channels}, (_, i) => `c${i}`), datasets: groups.map((gname) => `${gname}/data`),
      },
      c,
    )
  }
  const keys = file.keys()
  throw layoutError(
    path,
    `no PDEBench dataset found (it holds: ${keys.length ? keys.slice(0, 8).join(', ') : 'nothing'}); expected "tensor" ${dimNames}, "data" [N, T, X, C], per-field datasets (${FIELD_NAMES.join(', ')}) or per-sample groups "0000/data".`,
    'DATA_MISSING_DATASET',
  )
}

/** The h5wasm slice ranges of one layout, for samples [a, b), frames [t0, t1) step ts, and a spatial window. */
export function sliceRanges(
  kind: LayoutKind,
  a: number, b: number,
  time: [number, number, number],
  space: Array<[number, number]>,
): {ranges: Array<[number, number] | [number, number, number] | []>} {
  const t = time[2] === 1 ? ([time[0], time[1]] as [number, number]) : time
  if (kind === 'groups') return {ranges: [t, ...space, []]}
  const head: [number, number] = [a, b]
  if (kind === 'data') return {ranges: [head, t, ...space, []]}
  return {ranges: [head, t, ...space]}
}
