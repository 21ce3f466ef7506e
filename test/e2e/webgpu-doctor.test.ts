import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {hasStackTrace, runCli, tempDir} from '../helpers.js'
import {softwareVulkan, VULKAN_SKIP, vulkanEnv} from '../vulkan-env.js'

interface Doctor {
  ok: boolean
  checks: Array<{id: string; status: string; summary: string; fix?: string}>
  backends: Array<{name: string; available: boolean; detail: string}>
  webgpu: {available: boolean; problem: string | null; detail: string; fix: string | null; adapter: {vendor: string; software: boolean} | null}
}

async function doctor(env: Record<string, string>): Promise<{code: number; result: Doctor; stderr: string}> {
  const r = await runCli(['doctor', '--json'], {env: {...vulkanEnv(env), UPS_VASTAI_BIN: '/nonexistent/vastai'}})
  assert.ok(!hasStackTrace(r.stdout + r.stderr), r.stderr)
  return {code: r.code, result: JSON.parse(r.stdout) as Doctor, stderr: r.stderr}
}

const vk = softwareVulkan()

describe('ups doctor: the WebGPU adapter', () => {
  it('VK_ICD_FILENAMES pointing at nothing: a clear warning with the fix, not a crash', async () => {
    // With the software driver's folder on LD_LIBRARY_PATH the loader exists, so the ICD is what is missing.
    const env: Record<string, string> = {VK_ICD_FILENAMES: '/nonexistent/icd.json', ...(vk ? {LD_LIBRARY_PATH: vk.libDir} : {})}
    const {code, result} = await doctor(env)
    assert.equal(code, 0, 'a missing GPU is a warning: wasm and cpu still train')
    const check = result.checks.find((c) => c.id === 'webgpu.adapter')!
    assert.equal(check.status, 'warn')
    assert.equal(result.webgpu.available, false)
    if (vk || result.webgpu.problem === 'no-icd') {
      assert.equal(result.webgpu.problem, 'no-icd')
      assert.match(check.summary, /VK_ICD_FILENAMES=\/nonexistent\/icd\.json names no existing ICD manifest/)
    } else {
      assert.equal(result.webgpu.problem, 'no-libvulkan')
    }
    assert.match(check.fix ?? '', /setup-software-vulkan\.sh/)
    assert.equal(result.backends.find((b) => b.name === 'webgpu')?.available, false)
  })

  it('an ICD whose driver does not load: Dawn finds no adapter, doctor says so', {skip: vk ? false : VULKAN_SKIP}, async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'not-a-driver.so'), 'not an ELF file')
    const icd = join(dir, 'icd.json')
    await writeFile(icd, JSON.stringify({file_format_version: '1.0.0', ICD: {library_path: join(dir, 'not-a-driver.so'), api_version: '1.3.0'}}))
    const {code, result} = await doctor({VK_ICD_FILENAMES: icd, LD_LIBRARY_PATH: vk!.libDir})
    assert.equal(code, 0)
    assert.equal(result.webgpu.problem, 'adapter-rejected')
    assert.match(result.webgpu.detail, /no usable adapter.*not-a-driver\.so/)
  })

  it('the software adapter is reported, used only when allowed', {skip: vk ? false : VULKAN_SKIP}, async () => {
    const env = {VK_ICD_FILENAMES: vk!.icd, LD_LIBRARY_PATH: vk!.libDir}
    const denied = await doctor(env)
    assert.equal(denied.result.webgpu.problem, 'software-adapter')
    assert.equal(denied.result.webgpu.adapter?.vendor, 'mesa')
    assert.match(denied.result.checks.find((c) => c.id === 'webgpu.adapter')!.fix ?? '', /UPS_WEBGPU_ALLOW_SOFTWARE=1/)
    assert.equal(denied.result.backends.find((b) => b.name === 'webgpu')?.available, false)

    const allowed = await doctor({...env, UPS_WEBGPU_ALLOW_SOFTWARE: '1'})
    const check = allowed.result.checks.find((c) => c.id === 'webgpu.adapter')!
    assert.equal(check.status, 'ok')
    assert.match(check.summary, /WebGPU adapter: llvmpipe.*Mesa 25/)
    const webgpu = allowed.result.backends.find((b) => b.name === 'webgpu')!
    assert.equal(webgpu.available, true, webgpu.detail)
    assert.match(webgpu.detail, /WebGPU \(Dawn\/Vulkan\) on llvmpipe/)
  })
})
