/**
 * Streams samples into a PDEBench raw 1D file: `tensor` float32 [N, T, X], `x-coordinate` [X],
 * `t-coordinate` [T+1], with attributes recording the generator, its parameters and seed.
 * The tensor is chunked one sample per chunk (optionally gzip) and grown by resize +
 * write_slice, so files larger than memory can be written. The file is written under a temp
 * name in the target folder and renamed into place on `close()`: a crash never leaves a
 * half-written file under the real name.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {syncDir} from '../util/fs.js'
import {ExitCode, UserError} from '../util/errors.js'
import {type H5Dataset, type H5File, firstLine, loadH5} from './h5.js'

export interface WriterOptions {
  /** Frames per sample (T). */
  nt: number
  /** Grid points (X). */
  nx: number
  /** Cell centres, length X. */
  x: ArrayLike<number>
  /** Frame times, length T+1 as in PDEBench (the last one is one step past the final frame). */
  t: ArrayLike<number>
  /** Root attributes: generator name, parameters (stored as JSON when not scalar), seed, ... */
  attrs?: Record<string, string | number | bigint>
  /** gzip level 0-9; 0 or undefined writes uncompressed. */
  compression?: number
  /** Samples per chunk along N (default 1). */
  chunkSamples?: number
}

export interface PdebenchWriter {
  path: string
  /** Samples written so far. */
  readonly count: number
  /** Appends `n` samples laid out [n, T, X] (n inferred from the length). */
  append(samples: Float32Array): void
  /** Finishes the file and renames it into place. */
  close(): Promise<void>
  /** Drops the temp file; the target path is untouched. */
  abort(): Promise<void>
}

export async function createPdebenchWriter(path: string, options: WriterOptions): Promise<PdebenchWriter> {
  const {nt, nx} = options
  if (options.x.length !== nx) throw badArg(`x-coordinate has ${options.x.length} points; expected nx=${nx}.`)
  if (options.t.length !== nt + 1) throw badArg(`t-coordinate has ${options.t.length} points; expected nt+1=${nt + 1} (PDEBench layout).`)
  const level = options.compression ?? 0
  if (!Number.isInteger(level) || level < 0 || level > 9) throw badArg(`compression must be an integer 0-9 (got ${level}).`)
  const dir = dirname(path)
  await mkdir(dir, {recursive: true})
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const h5 = await loadH5()
  let file: H5File
  try {
    file = new h5.File(tmp, 'w')
  } catch (error) {
    throw new UserError(`Cannot create ${tmp}: ${firstLine(error)}.`, {code: 'DATA_WRITE_FAILED', exitCode: ExitCode.USAGE, cause: error})
  }
  let tensor: H5Dataset
  try {
    const chunk = Math.max(1, options.chunkSamples ?? 1)
    tensor = file.create_dataset({
      name: 'tensor',
      data: new Float32Array(0),
      shape: [0, nt, nx],
      maxshape: [null, nt, nx],
      chunks: [chunk, nt, nx],
      dtype: '<f',
      ...(level > 0 ? {compression: 'gzip' as const, compression_opts: level} : {}),
    })
    file.create_dataset({name: 'x-coordinate', data: Float32Array.from(options.x), dtype: '<f'})
    file.create_dataset({name: 't-coordinate', data: Float32Array.from(options.t), dtype: '<f'})
    for (const [key, value] of Object.entries(options.attrs ?? {})) {
      // bigint -> int64 (seeds reach 2^32; h5wasm would guess int32 for a number)
      if (typeof value === 'bigint') file.create_attribute(key, BigInt64Array.of(value) as never, [], '<q')
      else file.create_attribute(key, value)
    }
  } catch (error) {
    file.close()
    await rm(tmp, {force: true})
    throw new UserError(`Cannot write ${path}: ${firstLine(error)}.`, {code: 'DATA_WRITE_FAILED', exitCode: ExitCode.USAGE, cause: error})
  }

  let count = 0
  let closed = false
  const sampleSize = nt * nx
  return {
    path,
    get count() {
      return count
    },
    append(samples) {
      if (closed) throw new Error('writer is closed')
      if (samples.length === 0 || samples.length % sampleSize !== 0) {
        throw badArg(`append got ${samples.length} values; expected a multiple of T*X = ${nt}*${nx}.`)
      }
      const n = samples.length / sampleSize
      tensor.resize([count + n, nt, nx])
      tensor.write_slice([[count, count + n], [], []], samples)
      count += n
    },
    async close() {
      if (closed) return
      closed = true
      file.create_attribute('num_samples', count)
      file.close()
      const handle = await open(tmp, 'r+')
      await handle.sync()
      await handle.close()
      await rename(tmp, path)
      await syncDir(dir)
    },
    async abort() {
      if (!closed) {
        closed = true
        try {
          file.close()
        } catch {
          // already broken; the temp file goes anyway
        }
      }
      await rm(tmp, {force: true})
    },
  }
}

function badArg(message: string): UserError {
  return new UserError(message, {code: 'DATA_BAD_REQUEST', exitCode: ExitCode.USAGE})
}
