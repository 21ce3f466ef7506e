/**
 * The one place that loads h5wasm. It is imported lazily (a few MB of wasm) so that light
 * commands start fast, and HDF5's C error stack is turned into exceptions instead of being
 * printed to stderr. Opening checks what h5wasm does not: a missing file or a file that is
 * not HDF5 makes h5wasm return file_id -1 rather than throw.
 */
import {open as openFile, stat} from 'node:fs/promises'

import {ExitCode, UserError} from '../util/errors.js'

export type H5Module = (typeof import('h5wasm'))['default']
export type H5File = InstanceType<H5Module['File']>
export type H5Dataset = InstanceType<H5Module['Dataset']>
export type H5Group = InstanceType<H5Module['Group']>

let loading: Promise<H5Module> | undefined

/** The raw emscripten module, for the copy-once read path. */
interface WasmModule {
  HEAPU8: Uint8Array
  _malloc(n: number): number
  _free(ptr: number): void
  get_dataset_data(fileId: bigint, path: string, count: bigint[], offset: bigint[], strides: bigint[], ptr: bigint): number
}
let wasm: WasmModule | undefined

/** Loads h5wasm once per process. */
export async function loadH5(): Promise<H5Module> {
  loading ??= (async () => {
    const ns = await import('h5wasm/node')
    const mod = ns.default
    const ready = await mod.ready
    // Without this, HDF5 prints its whole error stack to stderr and returns -1.
    ;(ready as unknown as {activate_throwing_error_handler(): number}).activate_throwing_error_handler()
    wasm = ready as unknown as WasmModule
    return mod
  })()
  return loading
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])

/** HDF5's superblock sits at offset 0, 512, 1024, 2048, ... (a user block may precede it). */
export async function hasHdf5Signature(path: string): Promise<boolean> {
  const handle = await openFile(path, 'r')
  try {
    const {size} = await handle.stat()
    const buf = Buffer.alloc(8)
    for (let offset = 0; offset + 8 <= size; offset = offset === 0 ? 512 : offset * 2) {
      await handle.read(buf, 0, 8, offset)
      if (buf.equals(HDF5_SIGNATURE)) return true
      if (offset > 1 << 30) break
    }
    return false
  } finally {
    await handle.close()
  }
}

/** Opens an existing HDF5 file read-only, or throws a UserError saying which file and why. */
export async function openH5(path: string, hint?: string): Promise<H5File> {
  let size: number
  try {
    const s = await stat(path)
    if (!s.isFile()) throw Object.assign(new Error('not a file'), {code: 'EISDIR'})
    size = s.size
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UserError(`HDF5 file ${path} ${code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is not a regular file' : 'cannot be read'}.`, {
      code: 'DATA_FILE_MISSING',
      hint: hint ?? 'Check --data-root and the task/split names, or run `ups data generate` / `ups data fetch`.',
      exitCode: ExitCode.USAGE,
      cause: error,
    })
  }
  if (size === 0 || !(await hasHdf5Signature(path))) {
    throw new UserError(`${path} is not an HDF5 file (${size === 0 ? 'it is empty' : 'no HDF5 signature'}).`, {
      code: 'DATA_NOT_HDF5',
      hint: hint ?? 'The download may be incomplete or the file corrupt: re-fetch it with `ups data fetch`.',
      exitCode: ExitCode.USAGE,
    })
  }
  const h5 = await loadH5()
  let file: H5File
  try {
    file = new h5.File(path, 'r')
  } catch (error) {
    throw new UserError(`HDF5 file ${path} cannot be opened: ${firstLine(error)}.`, {
      code: 'DATA_NOT_HDF5',
      hint: hint ?? 'The file may be truncated or corrupt: re-fetch it with `ups data fetch`.',
      exitCode: ExitCode.USAGE,
      cause: error,
    })
  }
  if ((file as unknown as {file_id: bigint}).file_id < 0n) {
    throw new UserError(`HDF5 file ${path} cannot be opened.`, {code: 'DATA_NOT_HDF5', hint, exitCode: ExitCode.USAGE})
  }
  return file
}

/** The dataset at `name`, or null when absent or when it is a group. */
export function getDataset(file: H5File | H5Group, name: string): H5Dataset | null {
  try {
    const entity = file.get(name)
    return entity && (entity as {type?: string}).type === 'Dataset' ? (entity as H5Dataset) : null
  } catch {
    return null
  }
}

export function getGroup(file: H5File | H5Group, name: string): H5Group | null {
  try {
    const entity = file.get(name)
    return entity && (entity as {type?: string}).type === 'Group' ? (entity as H5Group) : null
  } catch {
    return null
  }
}

/** HDF5 class 1 is H5T_FLOAT. */
export function isFloatDataset(ds: H5Dataset): boolean {
  return ds.metadata.type === 1
}

export function toFloat32(values: unknown): Float32Array {
  if (values instanceof Float32Array) return values
  if (ArrayBuffer.isView(values)) return Float32Array.from(values as unknown as ArrayLike<number>)
  if (Array.isArray(values)) return Float32Array.from(values.flat(Infinity) as number[])
  if (typeof values === 'number') return Float32Array.of(values)
  throw new Error(`cannot convert ${typeof values} to Float32Array`)
}

export function toFloat64(values: unknown): Float64Array {
  if (values instanceof Float64Array) return values
  if (ArrayBuffer.isView(values)) return Float64Array.from(values as unknown as ArrayLike<number>)
  if (Array.isArray(values)) return Float64Array.from(values.flat(Infinity) as number[])
  if (typeof values === 'number') return Float64Array.of(values)
  throw new Error(`cannot convert ${typeof values} to Float64Array`)
}

export function firstLine(error: unknown): string {
  const msg = (error as Error)?.message ?? String(error)
  const lines = msg.split('\n').map((l) => l.trim())
  // HDF5's stack: the most specific reason is the last "minor:" line.
  const minor = lines.filter((l) => l.startsWith('minor:')).pop()
  return minor ? minor.replace(/^minor:\s*/, '') : (lines[0] ?? 'unknown error')
}

type Range = [number, number] | [number, number, number] | []

/**
 * Reads a hyperslab of a little-endian float32 dataset straight into `out` at `at`: one copy
 * out of the wasm heap instead of h5wasm's slice() (which copies into a fresh buffer first).
 * Falls back to slice() for other dtypes. `ranges` as in h5wasm: [start, stop(, step)] or [] per dim.
 */
export function readInto(ds: H5Dataset, ranges: Range[], out: Float32Array, at: number): number {
  const meta = ds.metadata
  const shape = meta.shape ?? []
  if (!wasm || meta.type !== 1 || meta.size !== 4 || !meta.littleEndian) {
    const values = toFloat32(ds.slice(ranges))
    out.set(values, at)
    return values.length
  }
  const count: bigint[] = []
  const offset: bigint[] = []
  const strides: bigint[] = []
  let total = 1
  shape.forEach((n, i) => {
    const r = ranges[i] ?? []
    const lo = Math.max(0, Math.min(n, r[0] ?? 0))
    const hi = Math.min(n, r[1] ?? n)
    const step = r[2] ?? 1
    const c = hi > lo ? Math.ceil((hi - lo) / step) : 0
    count.push(BigInt(c))
    offset.push(BigInt(lo))
    strides.push(BigInt(step))
    total *= c
  })
  if (total === 0) return 0
  const ptr = wasm._malloc(total * 4)
  if (ptr === 0) throw new Error(`wasm allocation of ${total * 4} bytes failed`)
  try {
    wasm.get_dataset_data((ds as unknown as {file_id: bigint}).file_id, ds.path, count, offset, strides, BigInt(ptr))
    // HEAPU8 may be replaced when the heap grows: read it after the call.
    out.set(new Float32Array(wasm.HEAPU8.buffer, ptr, total), at)
  } finally {
    wasm._free(ptr)
  }
  return total
}
