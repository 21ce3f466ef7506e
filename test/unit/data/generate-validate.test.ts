import assert from 'node:assert/strict'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {createHash} from 'node:crypto'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {ensureGeneratedData, generateDataset, openDataset, validateData} from '../../../src/data/index.js'
import {loadH5} from '../../../src/data/h5.js'
import {iota, linspace, tempDir, writeH5} from './helpers.js'

let dir: string
let cleanup: () => Promise<void>
before(async () => ({dir, cleanup} = await tempDir()))
after(() => cleanup())

const small = {samples: 6, nx: 32, nt: 11, splits: {train: 0.5, val: 0.25, test: 0.25}}
const deps = {now: () => new Date('2030-01-02T03:04:05Z')}

describe('generateDataset', () => {
  it('writes one PDEBench file per split from disjoint seeds, deterministically', async () => {
    const out = join(dir, 'gen')
    const progress: number[] = []
    const r = await generateDataset({task: 'burgers1d', outDir: out, ...small, seed: 100, onProgress: (p) => progress.push(p.overallDone)})
    assert.deepEqual(r.files.map((f) => [f.split, f.samples, f.firstSeed]), [['train', 3, 100], ['val', 2, 103], ['test', 1, 105]])
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6])
    const train = await openDataset(out, 'burgers1d', 'train')
    const val = await openDataset(out, 'burgers1d', 'val')
    const a = train.readSamples(0, 3).data
    const v = val.readSamples(0, 2).data
    assert.deepEqual(train.sampleShape, [11, 32, 1])
    assert.equal(train.t!.length, 11)
    assert.ok(Math.abs(train.t![10] - 2) < 1e-6)
    // disjoint: no val sample equals a train sample
    const sample = (d: Float32Array, i: number) => Array.from(d.subarray(i * 352, (i + 1) * 352))
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) assert.notDeepEqual(sample(v, i), sample(a, j))
    train.close()
    val.close()
    // same seed -> identical bytes of data
    const again = join(dir, 'gen2')
    await generateDataset({task: 'burgers1d', outDir: again, ...small, seed: 100})
    const t2 = await openDataset(again, 'burgers1d', 'train')
    assert.deepEqual(t2.readSamples(0, 3).data, a)
    t2.close()
    // attributes record generator, parameters and seed
    const h5 = await loadH5()
    const f = new h5.File(join(out, 'burgers1d_val.h5'), 'r')
    assert.equal(f.attrs.generator.value, 'ups data generate')
    assert.equal(JSON.parse(String(f.attrs.params.value)).nu, 0.01)
    assert.equal(Number(f.attrs.first_sample_seed.value), 103)
    f.close()
  })

  it('advection files hold the exact shifted solution', async () => {
    const out = join(dir, 'adv')
    await generateDataset({task: 'advection1d', outDir: out, samples: 3, nx: 32, nt: 5, beta: 0.5, tEnd: 3 / 32 / 0.5 * 4, splits: {train: 1}})
    const ds = await openDataset(out, 'advection1d', 'train')
    const {data} = ds.readSamples(0, 1)
    // frame k is frame 0 rolled by 3k cells
    for (let k = 1; k < 5; k++) for (let i = 0; i < 32; i++) assert.ok(Math.abs(data[k * 32 + i] - data[(i - 3 * k + 320) % 32]) < 1e-5)
    ds.close()
  })

  it('rejects bad parameters as usage errors', async () => {
    await assert.rejects(generateDataset({task: 'heat1d', outDir: dir}), (e: any) => e.code === 'DATA_UNKNOWN_TASK' && e.exitCode === 2)
    await assert.rejects(generateDataset({task: 'burgers1d', outDir: dir, nx: 4}), /--nx must be an integer >= 8/)
    await assert.rejects(generateDataset({task: 'burgers1d', outDir: dir, nu: -1}), /--nu must be > 0/)
  })
})

describe('ensureGeneratedData', () => {
  it('generates only missing splits and leaves existing files untouched', async () => {
    const root = join(dir, 'ensure')
    const opts = {root, task: 'burgers1d', seed: 3, ...small}
    const first = await ensureGeneratedData(opts)
    assert.deepEqual(first.generated, ['train', 'val', 'test'])
    const mtime = (await stat(join(root, 'burgers1d_train.h5'))).mtimeMs
    const second = await ensureGeneratedData(opts)
    assert.deepEqual(second.generated, [])
    assert.deepEqual(second.existing, ['train', 'val', 'test'])
    assert.equal((await stat(join(root, 'burgers1d_train.h5'))).mtimeMs, mtime)
    // one split lost -> only it comes back, identical to a full generation
    const {rm} = await import('node:fs/promises')
    await rm(join(root, 'burgers1d_test.h5'))
    const third = await ensureGeneratedData(opts)
    assert.deepEqual(third.generated, ['test'])
    const full = join(dir, 'ensure-full')
    await generateDataset({task: 'burgers1d', outDir: full, ...small, seed: 3})
    const a = await openDataset(root, 'burgers1d', 'test')
    const b = await openDataset(full, 'burgers1d', 'test')
    assert.deepEqual(a.readSamples(0, 1).data, b.readSamples(0, 1).data)
    a.close()
    b.close()
  })
  it('refuses files generated with other parameters', async () => {
    const root = join(dir, 'ensure')
    await assert.rejects(ensureGeneratedData({root, task: 'burgers1d', seed: 3, ...small, nu: 0.05}), (e: any) => e.code === 'DATA_PARAMS_MISMATCH' && /nu 0.01 \(want 0.05\)/.test(e.message))
  })
})

describe('validateData', () => {
  const statusOf = (r: any, id: string) => r.checks.find((c: any) => c.id === id)
  it('passes good generated data (all splits)', async () => {
    const root = join(dir, 'gen')
    const r = await validateData({root, tasks: ['burgers1d'], splits: 'all'}, deps)
    assert.equal(r.ok, true, JSON.stringify(r.files.map((f) => f.checks)))
    assert.deepEqual(r.files.map((f) => f.split), ['train', 'val', 'test'])
    assert.equal(r.files[0].samplesScanned, 3)
  })

  it('finds NaN, Inf, huge and constant samples, and --quick scans 10%', async () => {
    const root = join(dir, 'bad-values')
    const N = 20
    const t = iota([N, 3, 4])
    const d = t.data as Float32Array
    d[1 * 12 + 5] = NaN
    d[2 * 12 + 0] = Infinity
    d[3 * 12 + 7] = 3e10
    d.fill(7, 4 * 12, 5 * 12)
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: t, 'x-coordinate': linspace(4), 't-coordinate': linspace(4)})
    const r = await validateData({root, tasks: ['burgers1d'], splits: ['train']}, deps)
    assert.equal(r.ok, false)
    const values = statusOf(r.files[0], 'values')
    assert.equal(values.status, 'fail')
    assert.match(values.detail, /1 sample\(s\) contain NaN \(sample 1\)/)
    assert.match(values.detail, /contain Inf \(sample 2\)/)
    assert.match(values.detail, /\|value\| > 1e\+10 \(sample 3\)/)
    assert.match(values.detail, /are constant \(sample 4\)/)
    const quick = await validateData({root, tasks: ['burgers1d'], splits: ['train'], quick: true}, deps)
    assert.equal(quick.files[0].samplesScanned, 2) // samples 0 and 10
    assert.equal(quick.ok, true)
  })

  it('flags non-increasing coordinates, wrong rank and a missing split', async () => {
    const root = join(dir, 'bad-structure')
    const x = linspace(4)
    ;(x.data as Float32Array)[2] = 0
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: iota([2, 3, 4]), 'x-coordinate': x, 't-coordinate': linspace(4)})
    await writeH5(join(root, 'burgers1d_val.h5'), {tensor: iota([2, 3, 4, 1])})
    const r = await validateData({root, tasks: ['burgers1d'], splits: 'all'}, deps)
    const [train, val, test] = r.files
    assert.match(statusOf(train, 'coordinates').detail, /x-coordinate is not strictly increasing at index 2/)
    assert.equal(statusOf(val, 'hdf5').status, 'ok')
    assert.match(statusOf(val, 'layout').detail, /dataset "tensor" has rank 4 .* expected rank 3/)
    assert.equal(statusOf(test, 'exists').status, 'fail')
    assert.equal(r.ok, false)
  })

  it('checks size and md5 against a manifest, and quarantines failures with a reason file', async () => {
    const root = join(dir, 'manifest')
    await writeH5(join(root, 'burgers1d_train.h5'), {tensor: iota([2, 3, 4])})
    await writeH5(join(root, 'burgers1d_test.h5'), {tensor: iota([2, 3, 4], 1)})
    const bytes = await readFile(join(root, 'burgers1d_train.h5'))
    const md5 = createHash('md5').update(bytes).digest('hex')
    const manifest = join(dir, 'manifest.json')
    await writeFile(manifest, JSON.stringify([
      {path: 'burgers1d_train.h5', size_bytes: bytes.length, checksum: md5, checksum_type: 'md5'},
      {path: 'data/burgers1d_test.h5', size_bytes: bytes.length, checksum: '0'.repeat(32), checksum_type: 'md5', url: 'https://example.org/burgers1d_test.h5'},
    ]))
    const q = join(dir, 'quarantine')
    const r = await validateData({root, tasks: ['burgers1d'], splits: ['train', 'test'], manifest, quarantineDir: q}, deps)
    assert.equal(statusOf(r.files[0], 'manifest').status, 'ok')
    assert.match(statusOf(r.files[1], 'manifest').detail, /md5 [0-9a-f]{32}, manifest says 0{32}/)
    assert.equal(r.files[1].quarantinedTo, join(q, 'burgers1d_test.h5'))
    assert.equal(r.files[1].refetch, `ups data fetch https://example.org/burgers1d_test.h5 --to ${root} --checksum md5:${'0'.repeat(32)}`)
    assert.deepEqual((await readdir(root)).sort(), ['burgers1d_train.h5'])
    assert.deepEqual((await readdir(q)).sort(), ['burgers1d_test.h5', 'burgers1d_test.h5.reason.json'])
    const reason = JSON.parse(await readFile(join(q, 'burgers1d_test.h5.reason.json'), 'utf8'))
    assert.equal(reason.quarantinedAt, '2030-01-02T03:04:05.000Z')
    assert.equal(reason.failedChecks[0].id, 'manifest')
  })

  it('reports a non-HDF5 file as an hdf5 failure', async () => {
    const root = join(dir, 'junk')
    await writeH5(join(root, 'keep.h5'), {a: iota([1])})
    await writeFile(join(root, 'advection1d_train.h5'), 'not hdf5 at all')
    const r = await validateData({root, tasks: ['advection1d'], splits: ['train']}, deps)
    assert.equal(statusOf(r.files[0], 'hdf5').status, 'fail')
    assert.equal(statusOf(r.files[0], 'layout').status, 'skip')
  })
})
