/**
 * The raw read path (HDF5 parsed by hand, readSync straight into the output) against the h5wasm
 * path: bit-identical for every readSamples shape, used where it should be (readStats), and
 * refusing what it does not handle (filters, big-endian, float64, dense links) by falling back.
 * Files come from h5py (libver earliest and latest) and from our writer.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {type DatasetOptions, createPdebenchWriter, openDataset} from '../../../src/data/index.js'
import {type RawLocation, locateDataset, openRawFile, planRuns} from '../../../src/data/h5-raw.js'
import {lookup3} from '../../../src/data/h5-raw-checksum.js'
import {iota, tempDir, writeH5} from './helpers.js'

const PYTHON = '/usr/bin/python3'
const probe = spawnSync(PYTHON, ['-c', 'import h5py, numpy'], {encoding: 'utf8'})
const skip = probe.status === 0 ? false : `h5py is not available to ${PYTHON} (install python3-h5py to run the raw-read tests)`
if (skip) console.log(`# skipped: ${skip}`)

let dir: string
let cleanup: () => Promise<void>
before(async () => ({dir, cleanup} = await tempDir()))
after(() => cleanup())

// Every case: a folder of files for one task, and whether the raw path must serve it.
const WRITE_CASES = `
import h5py, numpy as np, sys, os
root = sys.argv[1]
rng = np.random.default_rng(7)
def vals(shape, dtype=np.float32):
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    flat[3] = np.nan; flat[5] = -0.0; flat[7] = np.inf
    return a
def mk(case, name, libver='earliest'):
    os.makedirs(os.path.join(root, case), exist_ok=True)
    return h5py.File(os.path.join(root, case, name), 'w', libver=libver)
for lv in ['earliest', 'latest']:
    t = vals((5, 7, 16))
    with mk('tensor-' + lv, 'burgers1d_train_000.h5', lv) as f:
        f['tensor'] = t[:3]; f['x-coordinate'] = np.linspace(0, 1, 16, dtype=np.float32); f['t-coordinate'] = np.linspace(0, 1, 8, dtype=np.float32)
        f.attrs['note'] = 'attributes do not matter'
    with mk('tensor-' + lv, 'burgers1d_train_001.h5', lv) as f:
        f['tensor'] = t[3:]
with mk('data2d', 'ns2d_train.h5', 'latest') as f:
    f['data'] = vals((3, 5, 8, 6, 2))
with mk('fields', 'cfd2d_train.h5', 'latest') as f:
    for name in ['density', 'Vx', 'Vy', 'pressure']:
        f[name] = vals((3, 5, 8, 6))
with mk('groups', 'diffreact1d_train.h5') as f:
    for i in range(4):
        f.create_group('%04d' % i)['data'] = vals((6, 16, 2))
with mk('groups-compact', 'diffreact1d_train.h5', 'latest') as f:
    for i in range(4):
        f.create_group('%04d' % i)['data'] = vals((6, 16, 2))
with mk('groups-many', 'diffreact1d_train.h5') as f:
    for i in range(300):
        f.create_group('%04d' % i)['data'] = vals((2, 4, 1))
with mk('chunked', 'burgers1d_train.h5') as f:
    f.create_dataset('tensor', data=vals((5, 7, 16)), chunks=(2, 3, 5))
with mk('chunked-deep', 'burgers1d_train.h5') as f:
    f.create_dataset('tensor', data=vals((200, 6, 8)), chunks=(1, 3, 8))  # 400 chunks: a B-tree with internal nodes
for case, kw in [('gzip', dict(chunks=(1, 7, 16), compression='gzip')), ('shuffle', dict(chunks=(2, 7, 16), shuffle=True))]:
    with mk(case, 'burgers1d_train.h5') as f:
        f.create_dataset('tensor', data=vals((5, 7, 16)), **kw)
with mk('chunked-latest', 'burgers1d_train.h5', 'latest') as f:
    f.create_dataset('tensor', data=vals((5, 7, 16)), chunks=(1, 7, 16), maxshape=(None, 7, 16))
with mk('bigendian', 'burgers1d_train.h5') as f:
    f.create_dataset('tensor', data=vals((5, 7, 16)).astype('>f4'))
with mk('float64', 'burgers1d_train.h5') as f:
    f['tensor'] = vals((5, 7, 16), np.float64)
with mk('groups-dense', 'diffreact1d_train.h5', 'latest') as f:
    for i in range(12):
        f.create_group('%04d' % i)['data'] = vals((6, 16, 2))
`

const CASES: Array<{name: string; task: string; raw: boolean}> = [
  {name: 'tensor-earliest', task: 'burgers1d', raw: true},
  {name: 'tensor-latest', task: 'burgers1d', raw: true},
  {name: 'data2d', task: 'ns2d', raw: true},
  {name: 'fields', task: 'cfd2d', raw: true},
  {name: 'groups', task: 'diffreact1d', raw: true},
  {name: 'groups-compact', task: 'diffreact1d', raw: true},
  {name: 'groups-many', task: 'diffreact1d', raw: true},
  {name: 'chunked', task: 'burgers1d', raw: true},
  {name: 'chunked-deep', task: 'burgers1d', raw: true},
  {name: 'ours', task: 'burgers1d', raw: true},
  {name: 'gzip', task: 'burgers1d', raw: false},
  {name: 'shuffle', task: 'burgers1d', raw: false},
  {name: 'ours-gzip', task: 'burgers1d', raw: false},
  {name: 'chunked-latest', task: 'burgers1d', raw: false},
  {name: 'bigendian', task: 'burgers1d', raw: false},
  {name: 'float64', task: 'burgers1d', raw: false},
  {name: 'groups-dense', task: 'diffreact1d', raw: false},
]

async function writeOurs(path: string, compression: number): Promise<void> {
  const w = await createPdebenchWriter(path, {nt: 7, nx: 16, x: Array.from({length: 16}, (_, i) => i / 16), t: Array.from({length: 8}, (_, i) => i), compression})
  for (let s = 0; s < 5; s++) w.append(Float32Array.from({length: 7 * 16}, (_, i) => Math.sin(i * 0.37 + s) * (s + 1)))
  await w.close()
}

/** The same read with the raw path on and off, as raw bytes, plus which path served it. */
async function both(root: string, task: string, options: DatasetOptions, read: (ds: Awaited<ReturnType<typeof openDataset>>) => Float32Array) {
  const raw = await openDataset(root, task, 'train', options)
  const lib = await openDataset(root, task, 'train', {...options, rawReads: false})
  try {
    const a = read(raw)
    const b = read(lib)
    return {a: Buffer.from(a.buffer, a.byteOffset, a.byteLength), b: Buffer.from(b.buffer, b.byteOffset, b.byteLength), stats: {...raw.readStats!}, libStats: {...lib.readStats!}}
  } finally {
    raw.close()
    lib.close()
  }
}

describe('raw HDF5 read path', {skip}, () => {
  before(async () => {
    const r = spawnSync(PYTHON, ['-c', WRITE_CASES, dir], {encoding: 'utf8'})
    assert.equal(r.status, 0, r.stderr)
    await writeOurs(join(dir, 'ours', 'burgers1d_train.h5'), 0)
    await writeOurs(join(dir, 'ours-gzip', 'burgers1d_train.h5'), 4)
  })

  for (const c of CASES) {
    it(`${c.name}: every readSamples shape is bit-identical to h5wasm, served by the ${c.raw ? 'raw path' : 'library (fallback)'}`, async () => {
      const root = join(dir, c.name)
      const probeDs = await openDataset(root, c.task, 'train', {rawReads: false})
      const {numSamples: n, fullSpatialShape: grid, numFrames: T, channels: C} = probeDs
      probeDs.close()
      const patch = Math.min(...grid) - 3
      const frameBytes = grid.reduce((p, x) => p * x, 4 * C)
      const shapes: Array<{label: string; options: DatasetOptions; read: Parameters<typeof both>[3]}> = [
        {label: 'all samples (across shards)', options: {}, read: (ds) => ds.readSamples(0, n).data},
        {label: 'a middle range into a reused buffer', options: {}, read: (ds) => ds.readSamples(1, n - 1, {out: new Float32Array(n * ds.sampleShape.reduce((p, x) => p * x, 1))}).data},
        {label: 'time stride 2', options: {timeStride: 2}, read: (ds) => ds.readSamples(0, n).data},
        {label: 'patch crop', options: {patchSize: patch}, read: (ds) => ds.readSamples(0, n, {patchOrigin: grid.map((_, i) => 1 + i)}).data},
        {label: 'frames split by a tiny budget', options: {readBudgetBytes: frameBytes * 2}, read: (ds) => ds.readSamples(0, n).data},
        {label: 'stride + patch + tiny budget', options: {timeStride: 2, patchSize: patch, readBudgetBytes: frameBytes}, read: (ds) => ds.readSamples(1, n, {patchOrigin: grid.map(() => 2)}).data},
      ]
      for (const s of shapes) {
        const {a, b, stats, libStats} = await both(root, c.task, s.options, s.read)
        assert.ok(a.length > 0, s.label)
        assert.ok(a.equals(b), `${c.name}, ${s.label}: raw and h5wasm bytes differ`)
        assert.equal(libStats.raw, 0, 'rawReads: false must not use the raw path')
        if (c.raw) assert.deepEqual([stats.raw > 0, stats.library], [true, 0], `${c.name}, ${s.label}: expected the raw path, got ${JSON.stringify(stats)}`)
        else assert.deepEqual([stats.raw, stats.library > 0], [0, true], `${c.name}, ${s.label}: expected the fallback, got ${JSON.stringify(stats)}`)
      }
      assert.ok(T > 0)
    })
  }

  it('the values are the ones h5py wrote (not just equal to h5wasm)', async () => {
    const r = spawnSync(PYTHON, ['-c', `
import h5py, sys
f = h5py.File(sys.argv[1], 'r'); print(repr(float(f['tensor'][1, 6, 15])) + ' ' + repr(float(f['tensor'][2, 0, 0])))
`, join(dir, 'tensor-latest', 'burgers1d_train_000.h5')], {encoding: 'utf8'})
    assert.equal(r.status, 0, r.stderr)
    const [v1, v2] = r.stdout.trim().split(' ').map(Number)
    const ds = await openDataset(join(dir, 'tensor-latest'), 'burgers1d', 'train')
    const {data} = ds.readSamples(1, 3)
    assert.equal(ds.readStats!.raw, 1)
    ds.close()
    assert.equal(data[6 * 16 + 15], Math.fround(v1))
    assert.equal(data[7 * 16], Math.fround(v2))
  })

  it('rejects truncated and corrupt files (null, never a throw), and a corrupt checksummed header never moves the data', async () => {
    for (const name of ['tensor-earliest', 'tensor-latest']) {
      const bytes = await readFile(join(dir, name, 'burgers1d_train_000.h5'))
      const readIn = (buf: Buffer) => (offset: number, length: number) => {
        if (offset < 0 || offset + length > buf.length) throw new Error('past the end')
        return buf.subarray(offset, offset + length)
      }
      const good = locateDataset(readIn(bytes), bytes.length, 'tensor')
      assert.ok(good, `${name}: the intact file is located`)
      const start = good.chunks.get('0,0,0')!.address
      const end = start + 3 * 7 * 16 * 4
      for (let len = 0; len < bytes.length; len += len < end ? 37 : 1) {
        assert.equal(locateDataset(readIn(bytes.subarray(0, len)), len, 'tensor'), null, `${name} truncated to ${len} bytes`)
      }
      // Flip each metadata byte in turn (the data itself is not metadata).
      for (let i = 0; i < Math.min(start, 4096); i++) {
        const bad = Buffer.from(bytes)
        bad[i] ^= 0x5a
        const loc = locateDataset(readIn(bad), bad.length, 'tensor')
        if (name === 'tensor-latest' && loc) {
          // Superblock v3 and OHDR headers carry checksums: a flip either fails them or hit a byte that does not matter.
          assert.equal(loc.chunks.get('0,0,0')?.address, start, `byte ${i}: a corrupt header moved the data`)
          assert.deepEqual(loc.shape, [3, 7, 16], `byte ${i}`)
        }
      }
      assert.equal(locateDataset(readIn(bytes), bytes.length, 'missing'), null)
      assert.equal(locateDataset(readIn(bytes), bytes.length, 'x-coordinate/inner'), null)
    }
    // A chunk B-tree whose internal node points back at itself (no checksums in v0 files): refused, no hang.
    const deep = await readFile(join(dir, 'chunked-deep', 'burgers1d_train.h5'))
    let node = -1
    for (let i = deep.indexOf('TREE'); i >= 0; i = deep.indexOf('TREE', i + 1)) if (deep[i + 4] === 1 && deep[i + 5] > 0) node = i
    assert.ok(node > 0, 'the 400-chunk file has an internal chunk B-tree node')
    const looped = Buffer.from(deep)
    looped.writeBigUInt64LE(BigInt(node), node + 24 + 40)
    const inMemory = (offset: number, length: number) => {
      if (offset + length > looped.length) throw new Error('past the end')
      return looped.subarray(offset, offset + length)
    }
    assert.ok(locateDataset((o, n) => deep.subarray(o, o + n), deep.length, 'tensor'))
    assert.equal(locateDataset(inMemory, looped.length, 'tensor'), null)
    const junk = join(dir, 'junk.h5')
    await writeFile(junk, Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 9]), Buffer.alloc(600, 0xff)]))
    const f = openRawFile(junk)!
    assert.equal(f.locate('tensor'), null)
    assert.equal(f.readInto('tensor', [], new Float32Array(4), 0), -1)
    f.close()
    assert.equal(openRawFile(join(dir, 'does-not-exist.h5')), null)
  })

  it('lookup3 matches the published test vectors', () => {
    // From Bob Jenkins' lookup3.c driver5: hashlittle("", 0, 0) and "Four score and seven years ago".
    assert.equal(lookup3(new Uint8Array(0)), 0xdeadbeef)
    assert.equal(lookup3(Buffer.from('Four score and seven years ago')), 0x17770551)
    assert.equal(lookup3(Buffer.from('Four score and seven years ago'), 1), 0xcd628161)
  })
})

describe('raw read planning', () => {
  const contiguous = (shape: number[], address = 1000): RawLocation => ({
    shape, chunkShape: [...shape], layout: 'contiguous', chunks: new Map([[shape.map(() => 0).join(), {offset: shape.map(() => 0), address}]]),
  })
  const chunked = (shape: number[], chunkShape: number[], addresses: number[]): RawLocation => ({
    shape, chunkShape, layout: 'chunked',
    chunks: new Map(addresses.map((address, i) => [`${i * chunkShape[0]},0,0`, {offset: [i * chunkShape[0], 0, 0], address}])),
  })

  it('whole samples of a contiguous dataset are one read straight into the output', () => {
    const plan = planRuns(contiguous([4, 5, 6]), [[1, 3], [], []])!
    assert.equal(plan.total, 60)
    assert.deepEqual(plan.groups, [[{file: 1000 + 30 * 4, out: 0, n: 60}]])
  })

  it('a time stride gives one run per kept frame, gathered from one read when they lie close', () => {
    const plan = planRuns(contiguous([4, 5, 6]), [[0, 2], [0, 5, 2], []])!
    assert.equal(plan.total, 2 * 3 * 6)
    assert.equal(plan.groups.length, 1)
    // Frame 4 of sample 0 and frame 0 of sample 1 touch in the file and in the output: one run.
    assert.deepEqual(plan.groups[0].map((r) => [r.file, r.out, r.n]), [[1000, 0, 6], [1048, 6, 6], [1096, 12, 12], [1168, 24, 6], [1216, 30, 6]])
  })

  it('large runs are read one by one, never through scratch', () => {
    const plan = planRuns(contiguous([2, 100_000]), [[0, 2], [0, 50_000]])!
    assert.deepEqual(plan.groups, [[{file: 1000, out: 0, n: 50_000}], [{file: 1000 + 400_000, out: 50_000, n: 50_000}]])
  })

  it('chunks stored in order merge into one run; out of order they are gathered; a missing chunk falls back', () => {
    const inOrder = planRuns(chunked([4, 5, 6], [1, 5, 6], [1000, 1120, 1240, 1360]), [[0, 4], [], []])!
    assert.deepEqual(inOrder.groups, [[{file: 1000, out: 0, n: 120}]])
    const reversed = planRuns(chunked([4, 5, 6], [1, 5, 6], [1360, 1240, 1120, 1000]), [[0, 4], [], []])!
    assert.deepEqual(reversed.groups.flat().map((r) => [r.file, r.out]), [[1000, 90], [1120, 60], [1240, 30], [1360, 0]])
    // Chunks at addresses that differ by a non-multiple of 4 are never gathered into one float32 view.
    assert.deepEqual(planRuns(chunked([2, 5, 6], [1, 5, 6], [1122, 1000]), [[0, 2], [], []])!.groups, [[{file: 1000, out: 30, n: 30}], [{file: 1122, out: 0, n: 30}]])
    assert.equal(planRuns(chunked([4, 5, 6], [1, 5, 6], [1000, 1120]), [[1, 3], [], []]), null)
    assert.ok(planRuns(chunked([4, 5, 6], [1, 5, 6], [1000, 1120]), [[0, 2], [], []]))
  })
})

describe('raw HDF5 read path on files h5wasm writes (no h5py needed)', () => {
  it('our writer (chunked, plain and gzip) and plain/grouped datasets: raw where it can, identical bytes', async () => {
    const root = join(dir, 'h5wasm-only')
    await writeOurs(join(root, 'burgers1d_train_000.h5'), 0)
    await writeOurs(join(root, 'burgers1d_train_001.h5'), 3)
    const data = iota([3, 4, 6, 5, 2])
    await writeH5(join(root, 'ns2d_train.h5'), {data})
    await writeH5(join(root, 'diffreact1d_train.h5'), Object.fromEntries([0, 1, 2].map((i) => [`000${i}/data`, iota([4, 8, 2], i * 100)])))
    const cases: Array<[string, DatasetOptions, (ds: Awaited<ReturnType<typeof openDataset>>) => Float32Array, {raw: number; library: number}]> = [
      // Shard 000 is plain (raw), shard 001 gzip (library): one read each.
      ['burgers1d', {}, (ds) => ds.readSamples(3, 7).data, {raw: 1, library: 1}],
      ['burgers1d', {timeStride: 2, patchSize: 9}, (ds) => ds.readSamples(0, 5, {patchOrigin: [4]}).data, {raw: 1, library: 0}],
      ['ns2d', {patchSize: 3, timeStride: 3}, (ds) => ds.readSamples(1, 3, {patchOrigin: [2, 1]}).data, {raw: 1, library: 0}],
      ['diffreact1d', {readBudgetBytes: 8 * 2 * 4}, (ds) => ds.readSamples(0, 3).data, {raw: 12, library: 0}],
    ]
    for (const [task, options, read, expected] of cases) {
      const {a, b, stats} = await both(root, task, options, read)
      assert.ok(a.length > 0 && a.equals(b), `${task} ${JSON.stringify(options)}: bytes differ`)
      assert.deepEqual(stats, expected, `${task} ${JSON.stringify(options)}`)
    }
    const ns = await openDataset(root, 'ns2d', 'train', {patchSize: 3})
    // Sample 1, frame 0, x 2, y 1, channel 1 of [3, 4, 6, 5, 2] counted up from 0.
    assert.equal(ns.readSamples(1, 2, {patchOrigin: [2, 1]}).data[1], 1 * 240 + 2 * 10 + 1 * 2 + 1)
    ns.close()
  })
})
