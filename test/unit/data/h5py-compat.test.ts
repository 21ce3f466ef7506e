/**
 * Cross-checks with the reference HDF5 implementation (h5py): our writer -> h5py, and h5py
 * writing each PDEBench layout -> our reader. Skipped with a message when h5py is missing
 * (`apt-get install -y python3-h5py`).
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createPdebenchWriter, openDataset} from '../../../src/data/index.js'
import {tempDir} from './helpers.js'

const PYTHON = '/usr/bin/python3'
const probe = spawnSync(PYTHON, ['-c', 'import h5py, numpy'], {encoding: 'utf8'})
const skip = probe.status === 0 ? false : `h5py is not available to ${PYTHON} (install python3-h5py to run the compatibility tests)`
if (skip) console.log(`# skipped: ${skip}`)

const py = (code: string, ...args: string[]) => {
  const r = spawnSync(PYTHON, ['-c', code, ...args], {encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
  return r.stdout
}

let dir: string
let cleanup: () => Promise<void>
before(async () => ({dir, cleanup} = await tempDir()))
after(() => cleanup())

describe('h5py compatibility', {skip}, () => {
  it('h5py reads what our writer writes (names, dtypes, shapes, values, attributes, gzip)', async () => {
    const path = join(dir, 'burgers1d_train.h5')
    const w = await createPdebenchWriter(path, {
      nt: 3, nx: 4, x: [0.125, 0.375, 0.625, 0.875], t: [0, 0.5, 1, 1.5],
      attrs: {generator: 'ups data generate', seed: 4000000000n, nu: 0.01}, compression: 5,
    })
    w.append(Float32Array.from({length: 24}, (_, i) => i * 0.5))
    w.append(Float32Array.from({length: 12}, (_, i) => -i))
    await w.close()
    const out = JSON.parse(py(`
import h5py, json, sys
f = h5py.File(sys.argv[1], 'r')
t = f['tensor']
print(json.dumps({'shape': t.shape, 'dtype': str(t.dtype), 'maxshape': [m if m is not None else -1 for m in t.maxshape],
  'compression': t.compression, 'x': f['x-coordinate'][:].tolist(), 'xdtype': str(f['x-coordinate'].dtype), 't': f['t-coordinate'][:].tolist(),
  'v': float(t[0, 2, 3]), 'w': float(t[2, 2, 3]), 'seed': int(f.attrs['seed']), 'gen': f.attrs['generator'], 'nu': float(f.attrs['nu'])}))
`, path))
    assert.deepEqual(out.shape, [3, 3, 4])
    assert.equal(out.dtype, 'float32')
    assert.equal(out.xdtype, 'float32')
    assert.deepEqual(out.maxshape, [-1, 3, 4])
    assert.equal(out.compression, 'gzip')
    assert.deepEqual(out.x, [0.125, 0.375, 0.625, 0.875])
    assert.deepEqual(out.t, [0, 0.5, 1, 1.5])
    assert.equal(out.v, 5.5)
    assert.equal(out.w, -11)
    assert.equal(out.seed, 4000000000)
    assert.equal(out.gen, 'ups data generate')
    assert.equal(out.nu, 0.01)
  })

  it('our reader reads every layout h5py writes (float32 and float64, chunked and gzip)', async () => {
    const root = join(dir, 'layouts')
    py(`
import h5py, numpy as np, sys, os
root = sys.argv[1]
os.makedirs(root, exist_ok=True)
a = np.arange(2*5*8, dtype=np.float32).reshape(2, 5, 8)
with h5py.File(os.path.join(root, 'burgers1d_train.h5'), 'w') as f:
    f.create_dataset('tensor', data=a, chunks=(1, 5, 8), compression='gzip')
    f['x-coordinate'] = np.linspace(0, 1, 8, dtype=np.float32)
    f['t-coordinate'] = np.linspace(0, 2, 6, dtype=np.float32)
b = np.arange(2*3*4*5, dtype=np.float64).reshape(2, 3, 4, 5)
with h5py.File(os.path.join(root, 'cfd2d_train.h5'), 'w') as f:
    f['density'] = b; f['Vx'] = b + 1000; f['Vy'] = b + 2000; f['pressure'] = b + 3000
    f['x-coordinate'] = np.linspace(0, 1, 4); f['y-coordinate'] = np.linspace(0, 1, 5); f['t-coordinate'] = np.linspace(0, 1, 4)
with h5py.File(os.path.join(root, 'diffreact1d_train.h5'), 'w') as f:
    for i in range(3):
        g = f.create_group('%04d' % i)
        g['data'] = np.full((4, 6, 2), i, dtype=np.float32) + np.arange(2, dtype=np.float32)
        g['grid/x'] = np.linspace(0, 1, 6); g['grid/t'] = np.linspace(0, 1, 4)
c = np.arange(3*4*8*1, dtype=np.float32).reshape(3, 4, 8, 1)
with h5py.File(os.path.join(root, 'advection1d_train_000.h5'), 'w') as f:
    f.create_dataset('data', data=c[:2], chunks=True)
with h5py.File(os.path.join(root, 'advection1d_train_001.h5'), 'w') as f:
    f.create_dataset('data', data=c[2:])
`, root)
    const raw = await openDataset(root, 'burgers1d', 'train', {timeStride: 2})
    assert.deepEqual(raw.sampleShape, [3, 8, 1])
    assert.equal(raw.readSamples(1, 2).data[8], 40 + 2 * 8) // sample 1, frame 2, x 0
    raw.close()
    const fields = await openDataset(root, 'cfd2d', 'train')
    assert.deepEqual(fields.channelNames, ['density', 'Vx', 'Vy', 'pressure'])
    const f1 = fields.readSamples(1, 2).data
    assert.deepEqual(Array.from(f1.subarray(0, 4)), [60, 1060, 2060, 3060])
    fields.close()
    const groups = await openDataset(root, 'diffreact1d', 'train')
    assert.equal(groups.numSamples, 3)
    const g = groups.readSamples(0, 3).data
    assert.deepEqual([g[0], g[1], g[48], g[96 + 1]], [0, 1, 1, 3])
    groups.close()
    const shards = await openDataset(root, 'advection1d', 'train')
    assert.equal(shards.numSamples, 3)
    assert.deepEqual(shards.readSamples(0, 3).data, Float32Array.from({length: 96}, (_, i) => i))
    shards.close()
  })
})
