import assert from 'node:assert/strict'
import {readdir, readFile, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  createPdebenchWriter, findShards, loadOrComputeNormStats, normStatsPath, openDataset,
} from '../../../src/data/index.js'
import {iota, linspace, tempDir, writeH5} from './helpers.js'

let dir: string
let cleanup: () => Promise<void>
before(async () => ({dir, cleanup} = await tempDir()))
after(() => cleanup())

/** value of element (n, t, x) in an iota [N, T, X] tensor */
const at = (T: number, X: number, n: number, t: number, x: number, start = 0) => start + (n * T + t) * X + x

describe('raw 1D layout: writer -> Dataset', () => {
  it('round-trips, with PDEBench coordinates and attributes', async () => {
    const root = join(dir, 'rt')
    const w = await createPdebenchWriter(join(root, 'burgers1d_train.h5'), {
      nt: 4, nx: 8, x: linspace(8).data, t: linspace(5, 0, 4).data, attrs: {generator: 'test'}, compression: 3,
    })
    w.append(iota([2, 4, 8]).data)
    w.append(iota([1, 4, 8], 64).data)
    await w.close()
    assert.deepEqual(await readdir(root), ['burgers1d_train.h5'], 'no temp file left behind')
    const ds = await openDataset(root, 'burgers1d', 'train')
    try {
      assert.equal(ds.layout, 'tensor')
      assert.equal(ds.numSamples, 3)
      assert.deepEqual(ds.sampleShape, [4, 8, 1])
      assert.deepEqual(Array.from(ds.t!), [0, 1, 2, 3], 't trimmed to T frames')
      const {data, shape} = ds.readSamples(0, 3)
      assert.deepEqual(shape, [3, 4, 8, 1])
      assert.deepEqual(data, iota([3, 4, 8]).data)
    } finally {
      ds.close()
    }
  })

  it('applies time stride and patch crops from hyperslabs', async () => {
    const root = join(dir, 'stride')
    await writeH5(join(root, 'burgers1d_test.h5'), {tensor: iota([5, 7, 16]), 'x-coordinate': linspace(16), 't-coordinate': linspace(8)})
    const ds = await openDataset(root, 'burgers1d', 'test', {timeStride: 3, patchSize: 4})
    try {
      assert.equal(ds.numFrames, 3) // frames 0, 3, 6
      assert.deepEqual(ds.sampleShape, [3, 4, 1])
      const {data, shape} = ds.readSamples(1, 3, {patchOrigin: [10]})
      assert.deepEqual(shape, [2, 3, 4, 1])
      let j = 0
      for (const n of [1, 2]) for (const t of [0, 3, 6]) for (const x of [10, 11, 12, 13]) assert.equal(data[j++], at(7, 16, n, t, x))
      assert.throws(() => ds.readSamples(0, 1, {patchOrigin: [13]}), /outside the grid/)
      assert.throws(() => ds.readSamples(4, 6), /outside \[0, 5\)/)
    } finally {
      ds.close()
    }
  })

  it('gives the same values whatever the read budget (splitting by samples and by frames)', async () => {
    const root = join(dir, 'stride')
    const big = await openDataset(root, 'burgers1d', 'test', {timeStride: 2})
    const tiny = await openDataset(root, 'burgers1d', 'test', {timeStride: 2, readBudgetBytes: 16 * 4 * 2}) // 2 frames per read
    try {
      assert.deepEqual(tiny.readSamples(0, 5).data, big.readSamples(0, 5).data)
      const batches = [...tiny.batches(2)]
      assert.deepEqual(batches.map((b) => [b.start, b.end]), [[0, 2], [2, 4], [4, 5]])
    } finally {
      big.close()
      tiny.close()
    }
  })
})

describe('other PDEBench layouts', () => {
  it('reads per-field 2D files channels-last in field order', async () => {
    const root = join(dir, 'fields')
    await writeH5(join(root, 'cfd2d_train.h5'), {
      Vx: iota([2, 3, 4, 5], 1000), density: iota([2, 3, 4, 5]), pressure: iota([2, 3, 4, 5], 2000),
      'x-coordinate': linspace(4), 'y-coordinate': linspace(5), 't-coordinate': linspace(4),
    })
    const ds = await openDataset(root, 'cfd2d', 'train')
    try {
      assert.equal(ds.layout, 'fields')
      assert.deepEqual(ds.channelNames, ['density', 'Vx', 'pressure'])
      const {data, shape} = ds.readSamples(1, 2)
      assert.deepEqual(shape, [1, 3, 4, 5, 3])
      // sample 1, t=2, x=3, y=4, channels density, Vx, pressure
      const base = (((0 * 3 + 2) * 4 + 3) * 5 + 4) * 3
      const v = 1 * 60 + 2 * 20 + 3 * 5 + 4
      assert.deepEqual(Array.from(data.subarray(base, base + 3)), [v, 1000 + v, 2000 + v])
    } finally {
      ds.close()
    }
  })

  it('reads per-sample group files (0000/data [T, X, C]) in numeric order', async () => {
    const root = join(dir, 'groups')
    await writeH5(join(root, 'diffreact1d_val.h5'), {
      '0000/data': iota([3, 4, 2]), '0001/data': iota([3, 4, 2], 100), '0002/data': iota([3, 4, 2], 200),
      '0000/grid/x': linspace(4), '0000/grid/t': linspace(3),
    })
    const ds = await openDataset(root, 'diffreact1d', 'val', {timeStride: 2})
    try {
      assert.equal(ds.layout, 'groups')
      assert.equal(ds.numSamples, 3)
      assert.deepEqual(ds.sampleShape, [2, 4, 2])
      assert.deepEqual(Array.from(ds.x!), Array.from(linspace(4).data))
      const {data} = ds.readSamples(1, 3)
      assert.equal(data[0], 100)
      assert.equal(data[8], 116) // sample 1, frame 2 (stride), x=0, c=0
      assert.equal(data[16], 200)
    } finally {
      ds.close()
    }
  })

  it('reads converted shards (data [N, T, X, C]) concatenated in sorted order', async () => {
    const root = join(dir, 'shards')
    await writeH5(join(root, 'burgers1d_train_001.h5'), {data: iota([2, 3, 4, 1], 1000)})
    await writeH5(join(root, 'burgers1d_train_000.h5'), {data: iota([3, 3, 4, 1])})
    assert.deepEqual((await findShards(root, 'burgers1d', 'train')).map((f) => f.slice(-7)), ['_000.h5', '_001.h5'])
    const ds = await openDataset(root, 'burgers1d', 'train', {readBudgetBytes: 48})
    try {
      assert.equal(ds.layout, 'data')
      assert.equal(ds.numSamples, 5)
      assert.equal(ds.x, null)
      const {data} = ds.readSamples(2, 4) // crosses the shard boundary
      assert.equal(data[0], 24)
      assert.equal(data[12], 1000)
    } finally {
      ds.close()
    }
  })

  it('finds `valid` when asked for `val` (PDEBench spelling)', async () => {
    const root = join(dir, 'valid')
    await writeH5(join(root, 'burgers1d_valid.h5'), {tensor: iota([1, 2, 4])})
    assert.equal((await findShards(root, 'burgers1d', 'val'))[0], join(root, 'burgers1d_valid.h5'))
  })
})

describe('errors name the file, the dataset and the expectation', () => {
  const expectError = async (root: string, task: string, re: RegExp, code: string) => {
    await assert.rejects(openDataset(root, task, 'train'), (e: any) => {
      assert.equal(e.name, 'UserError')
      assert.equal(e.code, code)
      assert.equal(e.exitCode, 2)
      assert.match(e.message, re)
      return true
    })
  }
  it('no files at all', async () => expectError(join(dir, 'nothing'), 'burgers1d', /burgers1d_train\.h5 and burgers1d_train_\*\.h5/, 'DATA_NOT_FOUND'))
  it('not an HDF5 file', async () => {
    const root = join(dir, 'junk')
    await writeH5(join(root, 'x.h5'), {a: iota([1])}) // makes the folder
    await writeFile(join(root, 'burgers1d_train.h5'), 'this is not hdf5')
    await expectError(root, 'burgers1d', /burgers1d_train\.h5 is not an HDF5 file/, 'DATA_NOT_HDF5')
  })
  it('empty file', async () => {
    const root = join(dir, 'junk')
    await writeFile(join(root, 'advection1d_train.h5'), '')
    await expectError(root, 'advection1d', /is not an HDF5 file \(it is empty\)/, 'DATA_NOT_HDF5')
  })
  it('missing dataset', async () => {
    const root = join(dir, 'nods')
    await writeH5(join(root, 'burgers1d_train.h5'), {something: iota([2, 2])})
    await expectError(root, 'burgers1d', /burgers1d_train\.h5: no PDEBench dataset found \(it holds: something\); expected "tensor" \[N, T, X\]/, 'DATA_MISSING_DATASET')
  })
  it('wrong rank', async () => {
    const root = join(dir, 'rank')
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: iota([2, 3, 4, 5])})
    await expectError(root, 'burgers1d', /dataset "tensor" has rank 4 \(shape \[2, 3, 4, 5\]\); expected rank 3 \[N, T, X\]/, 'DATA_WRONG_RANK')
  })
  it('integer dtype', async () => {
    const root = join(dir, 'dtype')
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: {data: new Int32Array(8), shape: [1, 2, 4]}})
    await expectError(root, 'burgers1d', /expected a float dtype/, 'DATA_WRONG_DTYPE')
  })
})

describe('normalisation statistics', () => {
  it('come from train only, are cached by size+mtime, and recompute when train changes', async () => {
    const root = join(dir, 'norm')
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: {data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), shape: [2, 2, 2]}})
    await writeH5(join(root, 'burgers1d_test.h5'), {tensor: {data: new Float32Array(8).fill(1000), shape: [2, 2, 2]}})
    const s1 = await loadOrComputeNormStats(root, 'burgers1d', {readBudgetBytes: 16})
    assert.equal(s1.cached, false)
    assert.ok(Math.abs(s1.mean[0] - 4.5) < 1e-12)
    assert.ok(Math.abs(s1.std[0] - Math.sqrt(5.25)) < 1e-12)
    const s2 = await loadOrComputeNormStats(root, 'burgers1d')
    assert.equal(s2.cached, true)
    assert.deepEqual(s2.mean, s1.mean)
    // applied to another split with the TRAIN statistics
    const ds = await openDataset(root, 'burgers1d', 'test', {normalize: s1})
    assert.ok(Math.abs(ds.readSamples(0, 1).data[0] - (1000 - 4.5) / Math.sqrt(5.25)) < 1e-3)
    ds.close()
    // the train file changes -> stale cache is ignored
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: {data: new Float32Array(8).fill(2), shape: [2, 2, 2]}})
    await utimes(join(root, 'burgers1d_train.h5'), new Date(1e12), new Date(1e12))
    const s3 = await loadOrComputeNormStats(root, 'burgers1d')
    assert.equal(s3.cached, false)
    assert.equal(s3.mean[0], 2)
    const onDisk = JSON.parse(await readFile(normStatsPath(root, 'burgers1d'), 'utf8'))
    assert.equal(onDisk.mean[0], 2)
    assert.equal(onDisk.files[0].name, 'burgers1d_train.h5')
  })
})

describe('writer', () => {
  it('abort leaves neither the target nor a temp file', async () => {
    const root = join(dir, 'abort')
    const w = await createPdebenchWriter(join(root, 'burgers1d_train.h5'), {nt: 2, nx: 4, x: [0, 1, 2, 3], t: [0, 1, 2]})
    w.append(new Float32Array(8))
    await w.abort()
    assert.deepEqual(await readdir(root), [])
  })
  it('rejects appends of the wrong size and bad coordinates', async () => {
    const root = join(dir, 'bad')
    await assert.rejects(createPdebenchWriter(join(root, 'a.h5'), {nt: 2, nx: 4, x: [0, 1, 2], t: [0, 1, 2]}), /x-coordinate has 3 points; expected nx=4/)
    await assert.rejects(createPdebenchWriter(join(root, 'a.h5'), {nt: 2, nx: 4, x: [0, 1, 2, 3], t: [0, 1]}), /expected nt\+1=3/)
    const w = await createPdebenchWriter(join(root, 'b.h5'), {nt: 2, nx: 4, x: [0, 1, 2, 3], t: [0, 1, 2]})
    assert.throws(() => w.append(new Float32Array(5)), /multiple of T\*X/)
    await w.abort()
  })
})
