import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'

import {checkDeclaredSize, computeNormStats, openDatasetFiles, validateData} from '../../../src/data/index.js'
import {loadH5} from '../../../src/data/h5.js'
import {loadTrainingData} from '../../../src/training/data.js'
import {UserError} from '../../../src/util/errors.js'
import {tempDir} from './helpers.js'

const T = 3
const X = 16

/**
 * A chunked `tensor` [N, T, X] (one sample per chunk) holding `written` samples of ones, then
 * resized to `declared` samples without writing them: the header promises what the file lacks.
 */
async function sparseFile(path: string, written: number, declared: number): Promise<void> {
  const h5 = await loadH5()
  const f = new h5.File(path, 'w')
  try {
    const ds = f.create_dataset({name: 'tensor', data: new Float32Array(written * T * X).fill(1), shape: [written, T, X], maxshape: [null, T, X], chunks: [1, T, X], dtype: '<f'})
    ds.resize([declared, T, X])
    f.create_dataset({name: 'x-coordinate', data: Float32Array.from({length: X}, (_, i) => i / X), dtype: '<f'})
    f.create_dataset({name: 't-coordinate', data: Float32Array.from({length: T + 1}, (_, i) => i / 10), dtype: '<f'})
  } finally {
    f.close()
  }
}

function rejectsCode(fn: () => Promise<unknown>, code: string, pattern: RegExp) {
  return assert.rejects(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error))
    assert.equal(error.code, code, error.message)
    assert.match(error.message, pattern)
    return true
  })
}

test('a file declaring 1e7 samples in a few KB is refused on open, before any sample is read', async (t) => {
  const {dir, cleanup} = await tempDir()
  t.after(cleanup)
  const path = join(dir, 'burgers1d_train.h5')
  await sparseFile(path, 0, 10_000_000)
  await rejectsCode(() => openDatasetFiles([path], 'burgers1d'), 'DATA_TRUNCATED', /declares 10000000 samples \(T=3, grid 16, C=1: 1\.9 GB as float32\) but is only [\d.]+ KB/)
  const result = await validateData({root: dir, tasks: ['burgers1d'], splits: ['train']}, {now: () => new Date(0)})
  assert.equal(result.ok, false)
  const layout = result.files[0].checks.find((c) => c.id === 'layout')
  assert.equal(layout?.status, 'fail')
  assert.match(layout?.detail ?? '', /declares 10000000 samples/)
  assert.equal(result.files[0].samplesScanned, 0)
})

test('an uncompressed chunked dataset with unwritten chunks is refused; a complete one opens', async (t) => {
  const {dir, cleanup} = await tempDir()
  t.after(cleanup)
  const partial = join(dir, 'partial.h5')
  await sparseFile(partial, 50, 100)
  await rejectsCode(() => openDatasetFiles([partial], 'burgers1d'), 'DATA_TRUNCATED', /50 of 100 chunks of "tensor" were never written/)
  const whole = join(dir, 'whole.h5')
  await sparseFile(whole, 100, 100)
  const ds = await openDatasetFiles([whole], 'burgers1d')
  assert.equal(ds.numSamples, 100)
  ds.close()
})

test('checkDeclaredSize allows what deflate could hold and refuses beyond its best ratio', () => {
  const layout = {path: 'f.h5', kind: 'fields' as const, numSamples: 1000, numFrames: 10, spatial: [100], channels: 1} as Parameters<typeof checkDeclaredSize>[0]
  const declared = 1000 * 10 * 100 * 4
  assert.doesNotThrow(() => checkDeclaredSize(layout, null, Math.ceil(declared / 1032)))
  assert.throws(() => checkDeclaredSize(layout, null, Math.floor(declared / 1033)), /DATA_TRUNCATED|never written/)
})

test('a split with 0 samples fails data validate, the norm statistics and training', async (t) => {
  const {dir, cleanup} = await tempDir()
  t.after(cleanup)
  await sparseFile(join(dir, 'burgers1d_val.h5'), 0, 0)
  const result = await validateData({root: dir, tasks: ['burgers1d'], splits: ['val']}, {now: () => new Date(0)})
  assert.equal(result.ok, false)
  assert.deepEqual(result.files[0].checks.find((c) => c.id === 'values'), {id: 'values', status: 'fail', detail: 'the file holds 0 samples: the split is empty'})

  await sparseFile(join(dir, 'burgers1d_train.h5'), 4, 4)
  const options = {root: dir, tasks: ['burgers1d'], timeStride: 1, maxSamples: null, dt: null, valFraction: 0.25, seed: 1}
  await rejectsCode(() => loadTrainingData(options), 'DATA_EMPTY_SPLIT', /The burgers1d val split in .* holds 0 samples/)

  await sparseFile(join(dir, 'burgers1d_train.h5'), 0, 0)
  await rejectsCode(() => computeNormStats(dir, 'burgers1d'), 'DATA_EMPTY_SPLIT', /burgers1d train split .* holds 0 samples/)
})
