import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {resolveBackend} from '../../../src/training/backend.js'
import {adapterInfo, diagnoseNoAdapter, findVulkan, probeWebgpu, type WebgpuFs} from '../../../src/training/webgpu.js'
import {UserError} from '../../../src/util/errors.js'
import {runVulkanFixture, softwareVulkan, VULKAN_SKIP} from '../../vulkan-env.js'

/** A fake file system: path -> content (folders are implied by their files). */
function fakeFs(files: Record<string, string>): WebgpuFs {
  return {
    exists: (p) => p in files,
    readdir: (d) => Object.keys(files).filter((p) => p.startsWith(d + '/')).map((p) => p.slice(d.length + 1)).filter((n) => !n.includes('/')),
    readText: (p) => {
      if (!(p in files)) throw new Error(`ENOENT ${p}`)
      return files[p]
    },
  }
}

const icd = (lib: string): string => JSON.stringify({file_format_version: '1.0.0', ICD: {library_path: lib, api_version: '1.3.0'}})
const LOADER = '/usr/lib/x86_64-linux-gnu/libvulkan.so.1'

describe('webgpu: why there is no adapter', () => {
  it('no libvulkan: says so and names the package, without loading Dawn', async () => {
    const imported: string[] = []
    const p = await probeWebgpu({env: {}, fs: fakeFs({}), importModule: async (n) => void imported.push(n)})
    assert.equal(p.available, false)
    assert.equal(p.problem, 'no-libvulkan')
    assert.match(p.fix ?? '', /libvulkan1/)
    assert.match(p.fix ?? '', /NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics/)
    assert.deepEqual(imported, [], 'Dawn must not be loaded when there is no Vulkan loader')
  })

  it('the ld.so cache counts as finding libvulkan', () => {
    const v = findVulkan({}, fakeFs({'/etc/ld.so.cache': 'junk libvulkan.so.1 junk'}))
    assert.equal(v.libvulkan, 'ld.so.cache')
  })

  it('VK_ICD_FILENAMES pointing at nothing is reported as such', () => {
    const v = findVulkan({VK_ICD_FILENAMES: '/nope/icd.json'}, fakeFs({[LOADER]: ''}))
    assert.equal(v.icdVariable, 'VK_ICD_FILENAMES=/nope/icd.json')
    const d = diagnoseNoAdapter(v)
    assert.equal(d.problem, 'no-icd')
    assert.match(d.detail, /VK_ICD_FILENAMES=\/nope\/icd.json names no existing ICD manifest/)
    assert.match(d.fix ?? '', /setup-software-vulkan\.sh/)
  })

  it('an NVIDIA ICD whose library is not mounted, and one in a folder the loader skips', () => {
    const files = {
      [LOADER]: '',
      '/usr/share/vulkan/icd.d/nvidia_icd.json': icd('libGLX_nvidia.so.0'),
      '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json': icd('libGLX_nvidia.so.0'),
    }
    const d = diagnoseNoAdapter(findVulkan({}, fakeFs(files)))
    assert.equal(d.problem, 'no-icd')
    assert.match(d.detail, /nvidia_icd\.json -> libGLX_nvidia\.so\.0/)
    assert.match(d.fix ?? '', /export VK_ICD_FILENAMES=\/usr\/local\/nvidia\/share\/vulkan\/icd\.d\/nvidia_icd\.json/)
    // With the driver library present (found via LD_LIBRARY_PATH), the ICD is usable.
    const mounted = findVulkan({LD_LIBRARY_PATH: '/usr/local/nvidia/lib64'}, fakeFs({...files, '/usr/local/nvidia/lib64/libGLX_nvidia.so.0': ''}))
    assert.equal(mounted.icds.find((i) => i.path.startsWith('/usr/share'))?.libraryFound, true)
    assert.equal(diagnoseNoAdapter(mounted).problem, 'adapter-rejected')
  })

  it('XDG_DATA_DIRS and VK_DRIVER_FILES are honoured as the loader does', () => {
    const files = {[LOADER]: '', '/opt/share/vulkan/icd.d/a.json': icd('/opt/a.so'), '/opt/a.so': '', '/x/b.json': icd('/opt/a.so')}
    assert.deepEqual(findVulkan({XDG_DATA_DIRS: '/opt/share'}, fakeFs(files)).icds.map((i) => i.path), ['/opt/share/vulkan/icd.d/a.json'])
    // VK_DRIVER_FILES (the newer name) wins over VK_ICD_FILENAMES and replaces the folder search.
    const v = findVulkan({XDG_DATA_DIRS: '/opt/share', VK_DRIVER_FILES: '/x/b.json', VK_ICD_FILENAMES: '/nope'}, fakeFs(files))
    assert.deepEqual(v.icds.map((i) => i.path), ['/x/b.json'])
  })

  it('software adapters are recognised (lavapipe, SwiftShader, fallback flag); a GPU is not', () => {
    assert.equal(adapterInfo({info: {vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7'}}).software, true)
    assert.equal(adapterInfo({info: {vendor: 'google', description: 'SwiftShader Device (Subzero)'}}).software, true)
    assert.equal(adapterInfo({info: {vendor: 'x', isFallbackAdapter: true}}).software, true)
    const nv = adapterInfo({info: {vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200'}})
    assert.deepEqual(nv, {vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200', software: false})
  })

  it('--backend webgpu without Vulkan is a UserError whose hint is the fix; auto moves on', async () => {
    const deps = {env: {}, fs: fakeFs({}), hasCudaGpu: () => false}
    await assert.rejects(resolveBackend('webgpu', undefined, deps), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.equal(e.code, 'TRAIN_BACKEND_UNAVAILABLE')
      assert.match(e.message, /no Vulkan loader/)
      assert.match(e.hint ?? '', /libvulkan1/)
      return true
    })
    const r = await resolveBackend('auto', undefined, {...deps, importModule: (n) => (n.includes('tfjs-node') ? Promise.reject(new Error('absent')) : import(n))})
    assert.deepEqual(r.tried.slice(0, 2).map((t) => [t.name, t.ok]), [['tensorflow-gpu', false], ['webgpu', false]])
    assert.match(r.reason, /webgpu: no Vulkan loader/)
  })
})

interface ParityModel {
  cpuLosses: number[]
  webgpuLosses: number[]
  cpuGradNorms: number[]
  webgpuGradNorms: number[]
  gradMaxDiff: number
  weightMaxDiff: number
  weightChange: number
}

const vk = softwareVulkan()

describe('webgpu training on a software Vulkan adapter', () => {
  it('every model trains on webgpu and matches cpu within 1e-4 (losses, gradients, updated weights)', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-parity.ts')
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    // Dawn reports invalid pipelines (e.g. too many storage buffers) as messages, not exceptions.
    assert.doesNotMatch(r.stderr, /validation:|Invalid ComputePipeline/, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {webgpuBackend: string; adapter: {vendor: string; software: boolean}; models: Record<string, ParityModel>}
    assert.equal(out.webgpuBackend, 'webgpu')
    assert.equal(out.adapter.software, true)
    assert.deepEqual(Object.keys(out.models).sort(), ['autoencoder', 'consistency', 'corrector', 'operator', 'steady_prior'])
    const close = (a: number[], b: number[]): number => Math.max(...a.map((x, i) => Math.abs(x - b[i])))
    for (const [name, m] of Object.entries(out.models)) {
      assert.equal(m.webgpuLosses.length, 3, name)
      assert.ok(m.webgpuLosses.every(Number.isFinite), `${name}: non-finite loss on webgpu`)
      assert.ok(close(m.cpuLosses, m.webgpuLosses) < 1e-4, `${name}: losses ${m.cpuLosses} vs ${m.webgpuLosses}`)
      assert.ok(close(m.cpuGradNorms, m.webgpuGradNorms) < 1e-4, `${name}: gradient norms ${m.cpuGradNorms} vs ${m.webgpuGradNorms}`)
      assert.ok(m.gradMaxDiff < 1e-4, `${name}: first-step gradients differ by ${m.gradMaxDiff}`)
      assert.ok(m.weightMaxDiff < 1e-4, `${name}: updated weights differ by ${m.weightMaxDiff}`)
      // The steps really changed the weights (else matching weights would prove nothing).
      assert.ok(m.weightChange > 1e-3, `${name}: training moved the weights by only ${m.weightChange}`)
    }
  })

  it('the programs train 10 steps within 1e-5 of the tfjs-op path; a checkpoint restored mid-run (fresh objects or the same ones) ends bit-identical to an uninterrupted run', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const r = await runVulkanFixture(vk!, 'webgpu-training.ts', {UPS_WEBGPU_ALLOW_SOFTWARE: '1'})
    assert.equal(r.code, 0, r.stderr.slice(-3000))
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {backend: string; parity: Record<'loss' | 'weights' | 'slots' | 'ema' | 'lossDrop', number>; arrays: number; fresh: string[]; same: string[]}
    assert.equal(out.backend, 'webgpu')
    // Losses, weights and EMA after 10 steps (AdamW, clipping, EMA); Adam's second moment holds g^2,
    // so its relative difference is about twice the gradients' (measured 1e-5).
    const p = out.parity
    assert.ok(p.loss <= 1e-5 && p.weights <= 1e-5 && p.ema <= 1e-5 && p.slots <= 1e-4, JSON.stringify(p))
    assert.ok(p.lossDrop < 0.99, `training must move: ${JSON.stringify(p)}`)
    assert.ok(out.arrays > 100, `${out.arrays} arrays compared`)
    assert.deepEqual(out.fresh, [], 'restored into fresh objects')
    assert.deepEqual(out.same, [], 'restored into the objects that trained on (a stale flat-parameter cache shows here)')
  })
})
