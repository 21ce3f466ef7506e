/**
 * The software Vulkan driver that scripts/setup-software-vulkan.sh unpacks (Mesa lavapipe), for the
 * WebGPU tests. Those run in child processes: the dynamic loader reads LD_LIBRARY_PATH at start.
 */
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
