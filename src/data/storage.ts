/**
 * Whether a file can hold what its datasets declare, decided from sizes alone before any sample
 * is read: a header declaring 1e7 samples in a 2 KB file (truncated, or resized and never
 * written) would otherwise send readers through gigabytes of fill values or out of memory.
 */
import {statSync} from 'node:fs'

import {ExitCode, UserError} from '../util/errors.js'
import type {RawFile} from './h5-raw.js'
import type {FileLayout} from './layout.js'

/** deflate's best case (a run of one byte value): no HDF5 filter we read packs data tighter. */
const MAX_COMPRESSION_RATIO = 1032

function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} KB`
  return `${bytes} bytes`
}

function truncated(layout: FileLayout, why: string): UserError {
  return new UserError(`${layout.path}: ${why}; the file is truncated or its samples were never written.`, {
    code: 'DATA_TRUNCATED',
    hint: 'Re-fetch or regenerate the file; `ups data validate` lists the command.',
    exitCode: ExitCode.CHECK_FAILED,
  })
}

/**
 * Throws DATA_TRUNCATED when the declared samples cannot fit in the file (even compressed at
 * deflate's best ratio), or when an uncompressed chunked dataset lacks chunks (they would read
 * as the fill value). `raw` (optional) is the file's raw reader, whose chunk index is cached.
 */
export function checkDeclaredSize(layout: FileLayout, raw: RawFile | null, fileSize = statSync(layout.path).size): void {
  const values = layout.numSamples * layout.numFrames * layout.spatial.reduce((a, b) => a * b, 1) * layout.channels
  const declared = values * 4
  if (declared > MAX_COMPRESSION_RATIO * fileSize) {
    const shape = `T=${layout.numFrames}, grid ${layout.spatial.join('x')}, C=${layout.channels}`
    throw truncated(layout, `it declares ${layout.numSamples} samples (${shape}: ${formatSize(declared)} as float32) but is only ${formatSize(fileSize)}, more than any compression holds`)
  }
  if (!raw || (layout.kind !== 'tensor' && layout.kind !== 'data')) return
  const location = raw.locate(layout.datasets[0])
  if (!location || location.layout !== 'chunked') return
  const expected = location.shape.reduce((n, s, i) => n * Math.ceil(s / location.chunkShape[i]), 1)
  if (location.chunks.size < expected) {
    throw truncated(layout, `${expected - location.chunks.size} of ${expected} chunks of "${layout.datasets[0]}" were never written (they would read as the fill value)`)
  }
}

/** A split whose files hold no sample: nothing to train, validate or evaluate on. */
export function emptySplitError(task: string, split: string, root: string): UserError {
  return new UserError(`The ${task} ${split} split in ${root} holds 0 samples.`, {
    code: 'DATA_EMPTY_SPLIT',
    hint: `Re-fetch or regenerate it (\`ups data validate --data-root ${root} --task ${task}\` checks every file)${split === 'train' ? '' : `, or remove the empty ${split} file to do without it`}.`,
    exitCode: ExitCode.CHECK_FAILED,
  })
}
