/**
 * Linux constants used by the simulated mm: page geometry, the address-space limits of x86-64
 * with 4-level paging, and the uapi/kernel flag values (PROT_*, MAP_*, MADV_*, MREMAP_*, VM_*,
 * FAULT_FLAG_*, VM_FAULT_*). Values are the kernel's, so a driver prototype reads like C.
 *
 * @module
 */
import { modPow2 } from '@hmmkit/sim';

/** PAGE_SHIFT on x86-64. */
export const PAGE_SHIFT = 12;
/** PAGE_SIZE (4 KiB). */
export const PAGE_SIZE = 4096;
/** Entries per page-table page (PTRS_PER_PTE/PMD/PUD/PGD). */
export const PTRS_PER_TABLE = 512;
/** PMD_SHIFT: a PMD entry maps 2 MiB. */
export const PMD_SHIFT = 21;
/** PMD_SIZE (2 MiB): the THP size and the unit of an hmm walk. */
export const PMD_SIZE = 2 * 1024 * 1024;
/** PUD_SHIFT: a PUD entry maps 1 GiB. */
export const PUD_SHIFT = 30;
/** PUD_SIZE (1 GiB). */
export const PUD_SIZE = 1024 * 1024 * 1024;
/** PGDIR_SIZE (512 GiB) with 4-level paging. */
export const PGDIR_SIZE = 512 * PUD_SIZE;
/** HPAGE_PMD_NR: base pages per PMD-mapped THP. */
export const HPAGE_PMD_NR = 512;
/** HPAGE_PMD_ORDER. */
export const HPAGE_PMD_ORDER = 9;
/** Base pages per 1 GiB (PUD) huge page. */
export const HPAGE_PUD_NR = 512 * 512;
/** HPAGE_PUD_ORDER. */
export const HPAGE_PUD_ORDER = 18;
/** TASK_SIZE_MAX on x86-64 with 4-level paging: 2^47 - PAGE_SIZE. User VAs lie below it. */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
/** Default vm.mmap_min_addr (65536): MAP_FIXED below it fails with -EPERM. */
export const MMAP_MIN_ADDR = 65536;
/** Where top-down mmap placement starts (mm->mmap_base, deterministic: no ASLR). */
export const MMAP_BASE = 0x7f0000000000;

/** Rounds `x` up to a page boundary (PAGE_ALIGN) without 32-bit arithmetic. */
export function pageAlign(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * Rounds `x` (≥ 0) down to a multiple of `size` (a power of two), as ALIGN_DOWN(): by
 * {@link modPow2}, since `x % size` on an address past 2^31 is a slow float remainder.
 */
export function alignDown(x: number, size: number): number {
  return x - modPow2(x, size);
}

/** mmap/mprotect protections (uapi asm-generic/mman-common.h). */
export const PROT_NONE = 0x0;
/** Page can be read. */
export const PROT_READ = 0x1;
/** Page can be written. */
export const PROT_WRITE = 0x2;
/** Page can be executed. */
export const PROT_EXEC = 0x4;
/** Page may be used for atomic ops (accepted, no effect). */
export const PROT_SEM = 0x8;
/** mprotect: extend change to the start of a growsdown VMA (rejected: no growsdown VMAs here). */
export const PROT_GROWSDOWN = 0x01000000;
/** mprotect: extend change to the end of a growsup VMA (rejected). */
export const PROT_GROWSUP = 0x02000000;

/** Share changes. */
export const MAP_SHARED = 0x01;
/** Changes are private (copy-on-write). */
export const MAP_PRIVATE = 0x02;
/** MAP_SHARED that rejects unknown flags with -EOPNOTSUPP. */
export const MAP_SHARED_VALIDATE = 0x03;
/** Mask of the mapping type. */
export const MAP_TYPE = 0x0f;
/** Interpret addr exactly, replacing what is there. */
export const MAP_FIXED = 0x10;
/** Not backed by a file. */
export const MAP_ANONYMOUS = 0x20;
/** Lock the pages (accepted; no reclaim of locked VMAs). */
export const MAP_LOCKED = 0x2000;
/** Don't account swap (accepted, no effect). */
export const MAP_NORESERVE = 0x4000;
/** Populate (prefault) the mapping. */
export const MAP_POPULATE = 0x8000;
/** Create a hugetlb mapping. */
export const MAP_HUGETLB = 0x40000;
/** DAX sync faults: only valid with MAP_SHARED_VALIDATE; unsupported here (-EOPNOTSUPP). */
export const MAP_SYNC = 0x80000;
/** MAP_FIXED that fails with -EEXIST instead of replacing. */
export const MAP_FIXED_NOREPLACE = 0x100000;
/** Encodes the hugetlb page size: log2(size) << MAP_HUGE_SHIFT. */
export const MAP_HUGE_SHIFT = 26;
/** Mask of the hugetlb size field (after shifting). */
export const MAP_HUGE_MASK = 0x3f;
/** 2 MiB hugetlb pages. */
export const MAP_HUGE_2MB = 21 * 2 ** MAP_HUGE_SHIFT;
/** 1 GiB hugetlb pages. */
export const MAP_HUGE_1GB = 30 * 2 ** MAP_HUGE_SHIFT;
/** mmap's failure value as returned by our mmap: a negative errno (MAP_FAILED is (void*)-1 in C). */
export const MAP_FAILED = -1;

/** madvise advice values (uapi). */
export const MADV_NORMAL = 0;
/** Expect random page references. */
export const MADV_RANDOM = 1;
/** Expect sequential references. */
export const MADV_SEQUENTIAL = 2;
/** Will need these pages. */
export const MADV_WILLNEED = 3;
/** Discard these pages (zap; anonymous memory reads back as zero). */
export const MADV_DONTNEED = 4;
/** Free pages only if memory pressure (lazy free). */
export const MADV_FREE = 8;
/** Don't inherit across fork. */
export const MADV_DONTFORK = 10;
/** Do inherit across fork. */
export const MADV_DOFORK = 11;
/** Worth backing with hugepages. */
export const MADV_HUGEPAGE = 14;
/** Not worth backing with hugepages. */
export const MADV_NOHUGEPAGE = 15;
/** Deactivate these pages. */
export const MADV_COLD = 20;
/** Reclaim these pages. */
export const MADV_PAGEOUT = 21;
/** Synchronous hugepage collapse. */
export const MADV_COLLAPSE = 25;

/** mremap flags. */
export const MREMAP_MAYMOVE = 1;
/** Move to new_address exactly. */
export const MREMAP_FIXED = 2;
/** Keep the old VMA (empty) after a move. */
export const MREMAP_DONTUNMAP = 4;

/** open(2)-style access modes of a {@link TmpFile} (O_RDONLY, O_WRONLY, O_RDWR). */
export const O_RDONLY = 0;
/** Write-only. */
export const O_WRONLY = 1;
/** Read and write. */
export const O_RDWR = 2;

/** vm_flags bits (include/linux/mm.h): the VMA is readable. */
export const VM_READ = 0x1;
/** VMA is writable. */
export const VM_WRITE = 0x2;
/** VMA is executable. */
export const VM_EXEC = 0x4;
/** Shared mapping. */
export const VM_SHARED = 0x8;
/** mprotect may add VM_READ. */
export const VM_MAYREAD = 0x10;
/** mprotect may add VM_WRITE. */
export const VM_MAYWRITE = 0x20;
/** mprotect may add VM_EXEC. */
export const VM_MAYEXEC = 0x40;
/** May be shared (MAP_SHARED). */
export const VM_MAYSHARE = 0x80;
/** Page-ranges managed without struct page (remap_pfn_range). */
export const VM_PFNMAP = 0x400;
/** mlock()ed. */
export const VM_LOCKED = 0x2000;
/** Memory-mapped I/O. */
export const VM_IO = 0x4000;
/** Don't copy this VMA on fork. */
export const VM_DONTCOPY = 0x20000;
/** Cannot expand with mremap. */
export const VM_DONTEXPAND = 0x40000;
/** Don't reserve swap. */
export const VM_NORESERVE = 0x200000;
/** A hugetlb mapping. */
export const VM_HUGETLB = 0x400000;
/** Can contain both struct-page and pure-pfn pages. */
export const VM_MIXEDMAP = 0x10000000;
/** MADV_HUGEPAGE was applied. */
export const VM_HUGEPAGE = 0x20000000;
/** MADV_NOHUGEPAGE was applied. */
export const VM_NOHUGEPAGE = 0x40000000;
/** VM_SPECIAL: VMAs that migrate_vma, mremap expansion and merging refuse. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
/** Flags that mprotect may change. */
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/** handle_mm_fault() flags (enum fault_flag). */
export const FAULT_FLAG_WRITE = 0x1;
/** The fault came from user space (a CPU load or store). */
export const FAULT_FLAG_USER = 0x40;
/** The fault is on behalf of another mm / a device (GUP, hmm). */
export const FAULT_FLAG_REMOTE = 0x80;

/** vm_fault_t bits. */
export const VM_FAULT_OOM = 0x000001;
/** Bus error. */
export const VM_FAULT_SIGBUS = 0x000002;
/** Major fault (swap-in, IO). */
export const VM_FAULT_MAJOR = 0x000004;
/** Hardware poisoned page. */
export const VM_FAULT_HWPOISON = 0x000010;
/** Hardware poisoned huge page. */
export const VM_FAULT_HWPOISON_LARGE = 0x000020;
/** Segmentation fault. */
export const VM_FAULT_SIGSEGV = 0x000040;
/** Huge page fault failed, fall back to small pages. */
export const VM_FAULT_FALLBACK = 0x000800;
/** VM_FAULT_ERROR: any of these means the access cannot be satisfied. */
export const VM_FAULT_ERROR =
  VM_FAULT_OOM |
  VM_FAULT_SIGBUS |
  VM_FAULT_SIGSEGV |
  VM_FAULT_HWPOISON |
  VM_FAULT_HWPOISON_LARGE |
  VM_FAULT_FALLBACK;

/** get_user_pages() flags (include/linux/mm_types.h): the page will be written. */
export const FOLL_WRITE = 0x01;
/** The pin is long-term (RDMA, a GPU binding): unmovable pages are migrated first. */
export const FOLL_LONGTERM = 0x100;
/** The reference is a pin (pin_user_pages): counted with GUP_PIN_COUNTING_BIAS. */
export const FOLL_PIN = 0x40000;
/** A FOLL_PIN reference adds this much to a small folio's refcount (folio_maybe_dma_pinned). */
export const GUP_PIN_COUNTING_BIAS = 1024;
