/**
 * GPUs ups can estimate for: memory, a throughput figure to scale measured step times by, and
 * a reference price. Throughput is the vendor's dense FP32 TFLOP/s (spec sheets: NVIDIA H200,
 * H100 SXM, A100, L40S, RTX 4090, RTX 3090, RTX A6000, A40, A10, L4, V100 datasheets); small
 * transformers are memory- and launch-bound, so treat ratios as a rough guide and prefer a
 * measured step time on the target GPU when one is recorded. Prices are typical Vast.ai
 * on-demand $/GPU-hour seen in 2025-10 (the runbook's A100 reference: $1.89/hr); `--live-prices`
 * replaces them with current offers.
 */
export interface GpuInfo {
  name: string
  /** Names Vast and users spell it with. */
  aliases: string[]
  memoryGb: number
  fp32Tflops: number
  pricePerHour: number
  priceDate: string
}

const PRICE_DATE = '2025-10-16'

export const GPUS: GpuInfo[] = [
  {name: 'H200', aliases: ['H200 SXM', 'H200 NVL'], memoryGb: 141, fp32Tflops: 67, pricePerHour: 3.5, priceDate: PRICE_DATE},
  {name: 'H100', aliases: ['H100 SXM', 'H100 PCIE', 'H100 NVL'], memoryGb: 80, fp32Tflops: 67, pricePerHour: 2.6, priceDate: PRICE_DATE},
  {name: 'A100', aliases: ['A100 SXM4', 'A100 PCIE', 'A100X', 'A100 80GB', 'A100 40GB'], memoryGb: 80, fp32Tflops: 19.5, pricePerHour: 1.89, priceDate: PRICE_DATE},
  {name: 'L40S', aliases: [], memoryGb: 48, fp32Tflops: 91.6, pricePerHour: 0.9, priceDate: PRICE_DATE},
  {name: 'RTX_4090', aliases: ['RTX 4090', '4090'], memoryGb: 24, fp32Tflops: 82.6, pricePerHour: 0.4, priceDate: PRICE_DATE},
  {name: 'RTX_3090', aliases: ['RTX 3090', '3090'], memoryGb: 24, fp32Tflops: 35.6, pricePerHour: 0.22, priceDate: PRICE_DATE},
  {name: 'A6000', aliases: ['RTX A6000', 'RTX_A6000'], memoryGb: 48, fp32Tflops: 38.7, pricePerHour: 0.5, priceDate: PRICE_DATE},
  {name: 'A40', aliases: [], memoryGb: 48, fp32Tflops: 37.4, pricePerHour: 0.45, priceDate: PRICE_DATE},
  {name: 'A10', aliases: [], memoryGb: 24, fp32Tflops: 31.2, pricePerHour: 0.35, priceDate: PRICE_DATE},
  {name: 'L4', aliases: [], memoryGb: 24, fp32Tflops: 30.3, pricePerHour: 0.35, priceDate: PRICE_DATE},
  {name: 'V100', aliases: ['Tesla V100', 'V100 SXM2', 'V100S'], memoryGb: 32, fp32Tflops: 15.7, pricePerHour: 0.25, priceDate: PRICE_DATE},
]

const normalize = (name: string) => name.toUpperCase().replace(/[\s_-]+/g, '')

/** Finds a GPU by any common spelling: "A100", "a100 sxm4", "RTX_4090", "RTX 4090". */
export function findGpu(name: string): GpuInfo | undefined {
  const key = normalize(name)
  return GPUS.find((g) => normalize(g.name) === key || g.aliases.some((a) => normalize(a) === key))
}

export const GPU_NAMES = GPUS.map((g) => g.name)
