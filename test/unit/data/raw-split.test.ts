import assert from 'node:assert/strict'
import {copyFile, link, mkdir, symlink} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  KNOWN_TASKS, RAW_FILE_PATTERNS, createPdebenchWriter, describeDataSources, findShards, listShards, loadOrComputeNormStats,
  openDataset, planRawSplit, rawCandidates, validateData, withDataSource,
} from '../../../src/data/index.js'
import {isUserError} from '../../../src/util/errors.js'
import {linspace, tempDir} from './helpers.js'

let dir: string
let cleanup: () => Promise<void>
before(async () => ({dir, cleanup} = await tempDir()))
after(() => cleanup())

const NT = 3
const NX = 4
/** Sample s holds s*1000 + j: every value says which file sample it came from. */
async function writeRaw(path: string, n: number, offset = 0): Promise<void> {
  const w = await createPdebenchWriter(path, {nt: NT, nx: NX, x: linspace(NX).data, t: linspace(NT + 1).data})
  for (let s = 0; s < n; s++) w.append(Float32Array.from({length: NT * NX}, (_, j) => (s + offset) * 1000 + j))
  await w.close()
}
const sampleIds = (data: Float32Array) => Array.from({length: data.length / (NT * NX)}, (_, i) => Math.floor(data[i * NT * NX] / 1000))
const now = () => new Date('2026-01-01T00:00:00Z')

describe('release file names', () => {
  it('every task of the table has a pattern that matches its example, as in the PDEBench release', () => {
    for (const task of Object.keys(KNOWN_TASKS)) {
      const p = RAW_FILE_PATTERNS[task]
      assert.ok(p, task)
      assert.ok(p.pattern.test(p.example), task)
    }
    assert.deepEqual(rawCandidates(['1D_Burgers_Sols_Nu0.01.hdf5', '1D_Burgers_Sols_Nu1.0.hdf5', 'burgers1d_train.h5', 'x.hdf5'], 'burgers1d'), ['1D_Burgers_Sols_Nu0.01.hdf5', '1D_Burgers_Sols_Nu1.0.hdf5'])
    assert.deepEqual(rawCandidates(['1D_Advection_Sols_beta0.1.hdf5', '1D_diff-sorp_NA_NA.h5', '2D_rdb_NA_NA.h5'], 'advection1d'), ['1D_Advection_Sols_beta0.1.hdf5'])
    assert.deepEqual(rawCandidates(['2D_DarcyFlow_beta1.0_Train.hdf5'], 'darcy2d'), ['2D_DarcyFlow_beta1.0_Train.hdf5'])
  })
})

describe('planRawSplit', () => {
  it('default: contiguous, test the last 10% as PDEBench, val before it', () => {
    const p = planRawSplit(10000)
    assert.deepEqual(p.counts, {train: 8500, val: 500, test: 1000})
    assert.deepEqual(p.ranges, {train: [[0, 8500]], val: [[8500, 9000]], test: [[9000, 10000]]})
    assert.equal(p.method, 'contiguous')
  })

  it('seeded: the same seed gives the same indices; the splits are disjoint and cover every sample', () => {
    const expand = (r: Array<[number, number]>) => r.flatMap(([a, b]) => Array.from({length: b - a}, (_, i) => a + i))
    const a = planRawSplit(1000, {val: 0.1, test: 0.2, seed: 7})
    const b = planRawSplit(1000, {val: 0.1, test: 0.2, seed: 7})
    const c = planRawSplit(1000, {val: 0.1, test: 0.2, seed: 8})
    assert.deepEqual(a, b)
    assert.notDeepEqual(a.ranges.test, c.ranges.test)
    const all = [...expand(a.ranges.train), ...expand(a.ranges.val), ...expand(a.ranges.test)].sort((x, y) => x - y)
    assert.deepEqual(all, Array.from({length: 1000}, (_, i) => i))
    assert.deepEqual([expand(a.ranges.train).length, expand(a.ranges.val).length, expand(a.ranges.test).length], [700, 100, 200])
    assert.ok(a.ranges.test.length > 1, 'a permutation, not one block')
  })

  it('a small file keeps at least one sample per non-zero fraction; no room for training is an error', () => {
    assert.deepEqual(planRawSplit(3).counts, {train: 1, val: 1, test: 1})
    assert.deepEqual(planRawSplit(10, {val: 0}).counts, {train: 9, val: 0, test: 1})
    assert.throws(() => planRawSplit(2), (e: unknown) => isUserError(e) && e.code === 'DATA_BAD_SPLIT')
    assert.throws(() => planRawSplit(10, {val: 1.5}), (e: unknown) => isUserError(e) && e.code === 'DATA_BAD_SPLIT')
  })
})

describe('a root holding only a raw PDEBench file', () => {
  let root: string
  before(async () => {
    root = join(dir, 'only-raw')
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.01.hdf5'), 40)
  })

  it('is found for every split, and each split reads only its own samples', async () => {
    for (const split of ['train', 'val', 'valid', 'test']) assert.deepEqual(await listShards(root, 'burgers1d', split), [join(root, '1D_Burgers_Sols_Nu0.01.hdf5')])
    const want = {train: [0, 34], val: [34, 36], test: [36, 40]} as const
    for (const [split, [a, b]] of Object.entries(want)) {
      const ds = await openDataset(root, 'burgers1d', split)
      try {
        assert.equal(ds.numSamples, b - a)
        assert.deepEqual(sampleIds(ds.readSamples(0, ds.numSamples).data), Array.from({length: b - a}, (_, i) => a + i))
        assert.deepEqual(ds.rawSplit?.ranges, [[a, b]])
      } finally {
        ds.close()
      }
    }
  })

  it('a seeded split maps view indices to the file samples across ranges, through batches and a reused buffer', async () => {
    const source = {split: {val: 0.1, test: 0.2, seed: 3}}
    const plan = planRawSplit(40, source.split)
    const ids = plan.ranges.train.flatMap(([a, b]) => Array.from({length: b - a}, (_, i) => a + i))
    const ds = await openDataset(root, 'burgers1d', 'train', {source})
    try {
      assert.equal(ds.numSamples, ids.length)
      assert.deepEqual(sampleIds(ds.readSamples(0, ds.numSamples).data), ids)
      assert.deepEqual(sampleIds(ds.readSamples(5, 17, {out: new Float32Array(40 * NT * NX)}).data), ids.slice(5, 17))
      const batched = [...ds.batches(7)].flatMap((b) => sampleIds(b.data))
      assert.deepEqual(batched, ids)
    } finally {
      ds.close()
    }
    // The same spec set around a caller that does not pass it (the training loader).
    const viaContext = await withDataSource(source, async () => {
      const d = await openDataset(root, 'burgers1d', 'train')
      d.close()
      return d.numSamples
    })
    assert.equal(viaContext, ids.length)
  })

  it('normalisation statistics come from the train samples only, and follow the split plan', async () => {
    const stats = await loadOrComputeNormStats(root, 'burgers1d')
    // Train samples 0..33: mean of s*1000 + j over s < 34, j < 12.
    assert.ok(Math.abs(stats.mean[0] - (16.5 * 1000 + 5.5)) < 1e-3, String(stats.mean[0]))
    const seeded = await loadOrComputeNormStats(root, 'burgers1d', {source: {split: {seed: 1}}})
    assert.equal(seeded.cached, false, 'another split plan is not served from the cache')
    assert.notEqual(seeded.mean[0], stats.mean[0])
  })

  it('records the file, its size, a hash, the fractions, seed and counts for the run metadata', async () => {
    const [s] = await describeDataSources(root, ['burgers1d'], {split: {seed: 5}})
    assert.equal(s.kind, 'raw')
    if (s.kind !== 'raw') return
    assert.equal(s.file.path, join(root, '1D_Burgers_Sols_Nu0.01.hdf5'))
    assert.ok(s.file.size > 0)
    assert.match(s.file.head_sha256, /^[0-9a-f]{64}$/)
    assert.deepEqual({val: s.val, test: s.test, seed: s.seed, method: s.method, samples: s.samples}, {val: 0.05, test: 0.1, seed: 5, method: 'seeded-permutation', samples: 40})
    assert.deepEqual(s.counts, {train: 34, val: 2, test: 4})
    assert.deepEqual(s.ranges.test, planRawSplit(40, {seed: 5}).ranges.test)
  })

  it('data validate checks each split over its own indices and reports the counts', async () => {
    const r = await validateData({root, tasks: ['burgers1d'], splits: 'all'}, {now})
    assert.equal(r.ok, true, JSON.stringify(r.files.map((f) => f.checks.filter((c) => c.status === 'fail'))))
    assert.deepEqual(r.files.map((f) => [f.split, f.numSamples, f.samplesScanned]), [['train', 34, 34], ['val', 2, 2], ['test', 4, 4]])
    for (const f of r.files) assert.equal(f.checks.find((c) => c.id === 'disjoint')?.status, 'ok')
  })
})

describe('choosing among raw files and shards', () => {
  it('several raw files for a task: an error listing them until data.file picks one', async () => {
    const root = join(dir, 'two-nu')
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.01.hdf5'), 10)
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.1.hdf5'), 20)
    await assert.rejects(listShards(root, 'burgers1d', 'train'), (e: unknown) => {
      assert.ok(isUserError(e) && e.code === 'DATA_RAW_AMBIGUOUS')
      assert.match(e.message, /1D_Burgers_Sols_Nu0\.01\.hdf5, 1D_Burgers_Sols_Nu0\.1\.hdf5/)
      assert.match(e.hint ?? '', /data\.file/)
      return true
    })
    const ds = await openDataset(root, 'burgers1d', 'train', {source: {file: '1D_Burgers_Sols_Nu0.1.hdf5'}})
    assert.equal(ds.numSamples, 17)
    ds.close()
    const byTask = await openDataset(root, 'burgers1d', 'test', {source: {file: {burgers1d: join(root, '1D_Burgers_Sols_Nu0.01.hdf5')}}})
    assert.equal(byTask.numSamples, 1)
    byTask.close()
    await assert.rejects(openDataset(root, 'burgers1d', 'train', {source: {file: 'nope.hdf5'}}), (e: unknown) => isUserError(e) && e.code === 'DATA_FILE_MISSING' && /Nu0\.1\.hdf5/.test(e.hint ?? ''))
  })

  it('shards win over a raw file unless data.file names it; a missing shard split never hints at generating over real data', async () => {
    const root = join(dir, 'mixed')
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.01.hdf5'), 20)
    await writeRaw(join(root, 'burgers1d_train.h5'), 5, 100)
    assert.deepEqual(await listShards(root, 'burgers1d', 'train'), [join(root, 'burgers1d_train.h5')])
    assert.deepEqual(await listShards(root, 'burgers1d', 'val'), [])
    await assert.rejects(findShards(root, 'burgers1d', 'val'), (e: unknown) => {
      assert.ok(isUserError(e) && e.code === 'DATA_NOT_FOUND')
      assert.doesNotMatch(e.hint ?? '', /generate/)
      assert.match(e.hint ?? '', /1D_Burgers_Sols_Nu0\.01\.hdf5/)
      return true
    })
    const r = await validateData({root, tasks: ['burgers1d'], splits: ['val']}, {now})
    assert.equal(r.ok, false)
    assert.doesNotMatch(JSON.stringify(r.files[0]), /data generate/)
    const ds = await openDataset(root, 'burgers1d', 'train', {source: {file: '1D_Burgers_Sols_Nu0.01.hdf5'}})
    assert.equal(ds.numSamples, 17)
    ds.close()
  })

  it('an empty root hints at fetching the release file first', async () => {
    const root = join(dir, 'empty')
    await mkdir(root, {recursive: true})
    await assert.rejects(findShards(root, 'burgers1d', 'train'), (e: unknown) => isUserError(e) && /1D_Burgers_Sols_Nu0\.01\.hdf5/.test(e.hint ?? ''))
  })
})

describe('data validate: files shared between splits', () => {
  const disjoint = (f: {checks: Array<{id: string; status: string; detail: string}>}) => f.checks.find((c) => c.id === 'disjoint')!

  it('one file symlinked as train, val and test fails, naming both files and the fix', async () => {
    const root = join(dir, 'symlinked')
    await writeRaw(join(root, 'real.h5'), 6)
    for (const s of ['train', 'val', 'test']) await symlink('real.h5', join(root, `burgers1d_${s}.h5`))
    const r = await validateData({root, tasks: ['burgers1d'], splits: 'all'}, {now})
    assert.equal(r.ok, false)
    for (const f of r.files) {
      assert.equal(disjoint(f).status, 'fail')
      assert.match(disjoint(f).detail, /burgers1d_train\.h5 \(train\) and .*burgers1d_(val|test)\.h5 .*same file/)
      assert.match(disjoint(f).detail, /Fix: /)
      assert.equal(f.refetch, undefined, 'the file is not damaged')
    }
  })

  it('a hard link and a byte copy fail too; distinct files pass', async () => {
    const root = join(dir, 'copies')
    await writeRaw(join(root, 'burgers1d_train.h5'), 6)
    await link(join(root, 'burgers1d_train.h5'), join(root, 'burgers1d_val.h5'))
    await copyFile(join(root, 'burgers1d_train.h5'), join(root, 'burgers1d_test.h5'))
    const r = await validateData({root, tasks: ['burgers1d'], splits: 'all'}, {now})
    assert.deepEqual(r.files.map((f) => disjoint(f).status), ['fail', 'fail', 'fail'])
    assert.match(disjoint(r.files[1]).detail, /hard links/)
    assert.match(disjoint(r.files[2]).detail, /identical samples/)

    const good = join(dir, 'distinct')
    await writeRaw(join(good, 'burgers1d_train.h5'), 6)
    await writeRaw(join(good, 'burgers1d_val.h5'), 2, 50)
    await writeRaw(join(good, 'burgers1d_test.h5'), 2, 60)
    const ok = await validateData({root: good, tasks: ['burgers1d'], splits: 'all'}, {now})
    assert.equal(ok.ok, true)
  })
})
