/**
 * The software Vulkan driver that scripts/setup-software-vulkan.sh unpacks (Mesa lavapipe), for the
 * WebGPU tests. Those run in child processes: the dynamic loader reads LD_LIBRARY_PATH at start.
 */
import {spawn} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {REPO_ROOT} from './helpers.js'

export interface SoftwareVulkan {
  /** The ICD manifest pointing at libvulkan_lvp.so. */
  icd: string
  /** Folder with libvulkan.so.1 and the driver. */
  libDir: string
}

export const VULKAN_SKIP = 'software Vulkan is not set up: run scripts/setup-software-vulkan.sh (Debian with apt; .ci/run does)'

export function softwareVulkan(): SoftwareVulkan | null {
  const file = join(process.env.UPS_VULKAN_CACHE ?? join(REPO_ROOT, '.cache', 'vulkan'), 'env.json')
  if (!existsSync(file)) return null
  const env = JSON.parse(readFileSync(file, 'utf8')) as {VK_ICD_FILENAMES: string; LD_LIBRARY_PATH: string}
  return existsSync(env.VK_ICD_FILENAMES) ? {icd: env.VK_ICD_FILENAMES, libDir: env.LD_LIBRARY_PATH} : null
}

/** process.env without any Vulkan/WebGPU settings of the caller's shell, plus `vars`. */
export function vulkanEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env}
  for (const k of ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'LD_LIBRARY_PATH', 'UPS_WEBGPU_ALLOW_SOFTWARE']) delete env[k]
  return {...env, ...vars}
}

/**
 * Runs test/fixtures/<fixture> in a child process on the software Vulkan driver (the loader reads
 * LD_LIBRARY_PATH at start, so the env must be set before the process exists). Killed after
 * `timeoutMs`: lavapipe compiles shaders on the CPU, slowly when its cache is cold.
 */
export function runVulkanFixture(vk: SoftwareVulkan, fixture: string, extraEnv: Record<string, string> = {}, timeoutMs = 240_000): Promise<{code: number; stdout: string; stderr: string}> {
  const env = vulkanEnv({VK_ICD_FILENAMES: vk.icd, LD_LIBRARY_PATH: vk.libDir, ...extraEnv})
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'fixtures', fixture)], {cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stdout, stderr})
    })
  })
}
