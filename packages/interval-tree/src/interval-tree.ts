/**
 * An augmented red-black interval tree over inclusive integer intervals `[start, last]`,
 * modelling the kernel's `lib/interval_tree.c` (the `INTERVAL_TREE_DEFINE()` template of
 * `include/linux/interval_tree_generic.h` over `lib/rbtree.c`'s augmented red-black tree).
 *
 * - Nodes are ordered by `start` only, as in the kernel: an insert with a `start` equal to an
 *   existing node's descends right, so nodes with equal starts sit in insertion order.
 * - Every node carries `subtreeLast`, the largest `last` in its subtree (the kernel's
 *   `__subtree_last`), kept up to date on insert, remove and every rotation.
 * - Like `rb_root_cached`, the tree remembers its leftmost node, which gives `iterFirst()` the
 *   kernel's O(1) early exit for queries that lie wholly before every interval.
 * - Keys are plain numbers up to `Number.MAX_SAFE_INTEGER` (2^53 - 1); nothing uses 32-bit
 *   bitwise operators on them.
 *
 * Storage: the tree's links live in one typed-array node pool, a 64-byte record per node (the
 * size of the kernel's `struct interval_tree_node` plus rb colour): `start`, `last`,
 * `subtreeLast` as float64 and `left`, `right`, `parent`, colour as int32 record numbers
 * (record 0 is the nil sentinel: black, `subtreeLast` -1, so a query never descends into it).
 * A descent step reads one record, not a JavaScript object and its boxed numbers; the
 * {@link IntervalTreeNode} objects are only the handles users hold (value, start, last).
 *
 * @module
 */
import { ArgumentError, StateError } from '@hmmkit/sim';

const RED = 0;
const BLACK = 1;

/** A node's colour: 0 red, 1 black (the kernel's `RB_RED` / `RB_BLACK`). */
type Color = typeof RED | typeof BLACK;

// Record layout: float64 slot (id << 3) + F_*, int32 slot (id << 4) + I_*.
const F_START = 0;
const F_LAST = 1;
const F_SUB = 2;
const I_LEFT = 8;
const I_RIGHT = 9;
const I_PARENT = 10;
const I_COLOR = 11;
/** The colour slot of a record on the free list. */
const FREE = 2;
const RECORD_BYTES = 64;
/** The nil record. */
const NIL = 0;

/**
 * A node of an {@link IntervalTree}: the interval `[start, last]` (both inclusive) and the
 * user's value. `start` and `last` never change. The tree keeps the node's links in its pool;
 * the accessors marked internal read them (for tests and invariant checks): do not write them.
 */
export class IntervalTreeNode<T> {
  /** First address of the interval (the kernel's `it->start`). */
  readonly start: number;
  /** Last address of the interval, inclusive (the kernel's `it->last`). */
  readonly last: number;
  /** The user's payload (the tree keeps a copy beside the node's record: it never changes). */
  readonly value: T;
  /** @internal Record number in the owner's pool; 0 while detached. */
  id: number;
  /** @internal The tree that holds this node, or null once removed. */
  owner: IntervalTree<T> | null;

  /** Builds a detached node; use {@link IntervalTree.insert} to create nodes in a tree. */
  constructor(start: number, last: number, value: T) {
    this.start = start;
    this.last = last;
    this.value = value;
    this.id = NIL;
    this.owner = null;
  }

  /** @internal Left child, or null. */
  get left(): IntervalTreeNode<T> | null {
    return this.link(I_LEFT);
  }

  /** @internal Right child, or null. */
  get right(): IntervalTreeNode<T> | null {
    return this.link(I_RIGHT);
  }

  /** @internal Parent, or null for the root. */
  get parent(): IntervalTreeNode<T> | null {
    return this.link(I_PARENT);
  }

  /** @internal Largest `last` in this node's subtree (the kernel's `__subtree_last`). */
  get subtreeLast(): number {
    return this.owner === null ? this.last : this.owner.f[(this.id << 3) + F_SUB]!;
  }

  /** @internal For tests only (corrupts the tree on purpose). */
  set subtreeLast(v: number) {
    if (this.owner !== null) this.owner.f[(this.id << 3) + F_SUB] = v;
  }

  /** @internal Red-black colour (0 red, 1 black). */
  get color(): Color {
    return this.owner === null ? RED : (this.owner.a[(this.id << 4) + I_COLOR] as Color);
  }

  /** @internal For tests only (corrupts the tree on purpose). */
  set color(v: Color) {
    if (this.owner !== null) this.owner.a[(this.id << 4) + I_COLOR] = v;
  }

  private link(slot: number): IntervalTreeNode<T> | null {
    const t = this.owner;
    if (t === null) return null;
    const id = t.a[(this.id << 4) + slot]!;
    return id === NIL ? null : t.nodes[id]!;
  }
}

/** The visitor of {@link IntervalTree.forEachOverlap}: return `false` to stop early. */
// biome-ignore lint/suspicious/noConfusingVoidType: visitors that return nothing (void) must fit too.
export type OverlapVisitor<T> = (node: IntervalTreeNode<T>) => boolean | void;

/**
 * A balanced augmented interval tree (red-black, as the kernel's). Models
 * `struct rb_root_cached` used with `interval_tree_insert()`, `interval_tree_remove()`,
 * `interval_tree_iter_first()` and `interval_tree_iter_next()`.
 *
 * Costs: insert and remove O(log n); `iterFirst` O(log n); `iterNext` O(log n) worst case per
 * step and O(1) amortised while matches are consecutive in start order, so a query that reports
 * k intervals costs O(log n + k) on notifier-like sets (intervals that do not nest) and at most
 * O(min(n, (k + 1) log n)) in general, as for the kernel's tree. Queries allocate nothing.
 *
 * Iteration contract (the kernel's): a caller walking matches with `iterFirst`/`iterNext` or
 * `forEachOverlap`, or the in-order iterator, must not insert or remove while it walks.
 * `forEachOverlap` and the iterator detect it and throw a {@link StateError};
 * `iterFirst`/`iterNext` cannot (they keep no state), and their results are then undefined.
 */
export class IntervalTree<T> {
  /** @internal The pool's float64 view (start, last, subtreeLast per record). */
  f: Float64Array;
  /** @internal The pool's int32 view of the same buffer (left, right, parent, colour per record). */
  a: Int32Array;
  /** @internal Record number → node handle (slot 0, nil, and free records hold undefined). */
  readonly nodes: (IntervalTreeNode<T> | undefined)[] = [undefined];
  /** @internal Record number → the node's value, so a walk by record reads no node handle. */
  readonly values: (T | undefined)[] = [undefined];
  private root = NIL;
  private leftmost = NIL;
  private count = 0;
  /** Records ever used (the pool's high-water mark, nil included). */
  private used = 1;
  /** Head of the free-record list, chained through the left link; 0 when empty. */
  private freeHead = NIL;
  /** Bumped by every insert, remove and clear; lets walks detect modification. */
  private version = 0;

  constructor() {
    const buf = new ArrayBuffer(8 * RECORD_BYTES);
    this.f = new Float64Array(buf);
    this.a = new Int32Array(buf);
    this.f[F_SUB] = -1; // nil: no query start (>= 0) is <= its subtreeLast
    this.a[I_COLOR] = BLACK;
  }

  /** Number of nodes in the tree. */
  get size(): number {
    return this.count;
  }

  /**
   * Models interval_tree_insert(): adds a node for `[start, last]` holding `value` and returns
   * it. Equal intervals are allowed; each insert makes its own node, placed after every node
   * with the same `start`. Throws an ArgumentError unless `0 <= start <= last <= 2^53 - 1`,
   * both integers; the tree is unchanged then.
   */
  insert(start: number, last: number, value: T): IntervalTreeNode<T> {
    checkRange('intervalTreeInsert', start, last);
    const node = new IntervalTreeNode(start, last, value);
    const id = this.allocRecord();
    node.id = id;
    node.owner = this;
    this.nodes[id] = node;
    this.values[id] = value;
    const f = this.f;
    const a = this.a;
    const fb = id << 3;
    const ab = id << 4;
    f[fb + F_START] = start;
    f[fb + F_LAST] = last;
    f[fb + F_SUB] = last;
    a[ab + I_LEFT] = NIL;
    a[ab + I_RIGHT] = NIL;
    a[ab + I_COLOR] = RED;
    let parent = NIL;
    let cur = this.root;
    let isLeft = false;
    let leftmost = true;
    // Descend as interval_tree_insert() does, raising subtreeLast on the way down.
    while (cur !== NIL) {
      const cf = cur << 3;
      if (f[cf + F_SUB]! < last) f[cf + F_SUB] = last;
      parent = cur;
      if (start < f[cf + F_START]!) {
        cur = a[(cur << 4) + I_LEFT]!;
        isLeft = true;
      } else {
        cur = a[(cur << 4) + I_RIGHT]!;
        isLeft = false;
        leftmost = false;
      }
    }
    a[ab + I_PARENT] = parent;
    if (parent === NIL) this.root = id;
    else a[(parent << 4) + (isLeft ? I_LEFT : I_RIGHT)] = id;
    if (leftmost) this.leftmost = id;
    this.insertFixup(id);
    this.count++;
    this.version++;
    return node;
  }

  /**
   * Models interval_tree_remove(): unlinks `node`. Throws a StateError, leaving the tree
   * unchanged, when `node` is not in this tree (removed already, cleared, or another tree's).
   */
  remove(node: IntervalTreeNode<T>): void {
    if (node.owner !== this) {
      throw new StateError(
        'intervalTreeRemove',
        `node [0x${node.start.toString(16)}, 0x${node.last.toString(16)}] is not in this tree` +
          (node.owner === null ? ' (removed already?)' : ' (it belongs to another tree)'),
      );
    }
    const id = node.id;
    const a = this.a;
    if (id === this.leftmost) {
      // The leftmost node has no left child: its successor is the right subtree's minimum or its parent.
      const r = a[(id << 4) + I_RIGHT]!;
      this.leftmost = r !== NIL ? minimum(a, r) : a[(id << 4) + I_PARENT]!;
    }
    this.erase(id);
    this.freeRecord(id);
    node.owner = null;
    node.id = NIL;
    this.count--;
    this.version++;
  }

  /** True while `node` is in this tree. */
  has(node: IntervalTreeNode<T>): boolean {
    return node.owner === this;
  }

  /**
   * Models interval_tree_iter_first(): the first node (in start order) overlapping the query
   * `[start, last]` (overlap: `node.start <= last && node.last >= start`), or null. Among nodes
   * with equal starts, the earliest inserted comes first, as in the kernel. Throws an
   * ArgumentError for a query that breaks the rules of {@link insert}.
   */
  iterFirst(start: number, last: number): IntervalTreeNode<T> | null {
    checkRange('intervalTreeIterFirst', start, last);
    const root = this.root;
    const f = this.f;
    // The kernel's fast path: nothing ends at or after start, or everything starts after last.
    if (root === NIL || f[(root << 3) + F_SUB]! < start || f[(this.leftmost << 3) + F_START]! > last) {
      return null;
    }
    const id = subtreeSearch(f, this.a, root, start, last);
    return id === NIL ? null : this.nodes[id]!;
  }

  /**
   * Models interval_tree_iter_next(): the next node after `node` in start order that overlaps
   * `[start, last]`, or null. Pass the same query as to {@link iterFirst}. Throws a StateError
   * if `node` is not in this tree. The tree must not change between the calls of one walk.
   */
  iterNext(node: IntervalTreeNode<T>, start: number, last: number): IntervalTreeNode<T> | null {
    if (node.owner !== this) throw new StateError('intervalTreeIterNext', 'node is not in this tree');
    checkRange('intervalTreeIterNext', start, last);
    const id = iterNextUnchecked(this.f, this.a, node.id, start, last);
    return id === NIL ? null : this.nodes[id]!;
  }

  /**
   * {@link iterFirst} by record number, for hot walks that want only the values (the kernel's
   * `container_of()` on the returned node, without a node handle in between): the record of the
   * first overlapping node, or 0 for none. Read it with {@link recordValue} /
   * {@link recordNode}; a record number is valid only while the tree is unchanged.
   */
  iterFirstRecord(start: number, last: number): number {
    checkRange('intervalTreeIterFirst', start, last);
    const root = this.root;
    const f = this.f;
    if (root === NIL || f[(root << 3) + F_SUB]! < start || f[(this.leftmost << 3) + F_START]! > last) {
      return NIL;
    }
    return subtreeSearch(f, this.a, root, start, last);
  }

  /** {@link iterNext} by record number (see {@link iterFirstRecord}): the next record, or 0. */
  iterNextRecord(record: number, start: number, last: number): number {
    if (!this.isRecord(record)) throw new StateError('intervalTreeIterNext', 'no node in this record');
    checkRange('intervalTreeIterNext', start, last);
    return iterNextUnchecked(this.f, this.a, record, start, last);
  }

  /** The value of the node in `record` (from {@link iterFirstRecord} / {@link iterNextRecord}). */
  recordValue(record: number): T {
    if (!this.isRecord(record)) throw new StateError('intervalTreeRecordValue', 'no node in this record');
    return this.values[record] as T;
  }

  /** True when `record` holds a node (read from the record itself: no handle is touched). */
  private isRecord(record: number): boolean {
    return (
      (record | 0) === record &&
      record > NIL &&
      record < this.used &&
      this.a[(record << 4) + I_COLOR] !== FREE
    );
  }

  /** The node handle in `record` (from {@link iterFirstRecord} / {@link iterNextRecord}). */
  recordNode(record: number): IntervalTreeNode<T> {
    const node = this.nodes[record];
    if (node === undefined) throw new StateError('intervalTreeRecordNode', 'no node in this record');
    return node;
  }

  /**
   * Calls `fn` for each node overlapping `[start, last]`, in the order of iterFirst/iterNext,
   * and stops early when `fn` returns `false`. Allocates nothing. If `fn` inserts into or removes
   * from this tree, the walk stops with a StateError (the change itself stands; the tree stays valid).
   */
  forEachOverlap(start: number, last: number, fn: OverlapVisitor<T>): void {
    const first = this.iterFirst(start, last);
    if (first === null) return;
    let id = first.id;
    const version = this.version;
    while (id !== NIL) {
      if (fn(this.nodes[id]!) === false) return;
      if (this.version !== version) {
        throw new StateError('intervalTreeForEachOverlap', 'the tree was modified during the walk');
      }
      id = iterNextUnchecked(this.f, this.a, id, start, last);
    }
  }

  /** The first node in start order (the kernel's `rb_first_cached()`), or null when empty. */
  first(): IntervalTreeNode<T> | null {
    return this.leftmost === NIL ? null : this.nodes[this.leftmost]!;
  }

  /** The in-order successor of `node` (the kernel's `rb_next()`), or null. `node` must be in this tree. */
  next(node: IntervalTreeNode<T>): IntervalTreeNode<T> | null {
    if (node.owner !== this) throw new StateError('intervalTreeNext', 'node is not in this tree');
    const id = successor(this.a, node.id);
    return id === NIL ? null : this.nodes[id]!;
  }

  /** In-order iteration of all nodes (start order, ties in insertion order). Throws a StateError on modification. */
  *[Symbol.iterator](): IterableIterator<IntervalTreeNode<T>> {
    const version = this.version;
    let id = this.leftmost;
    while (id !== NIL) {
      yield this.nodes[id]!;
      if (this.version !== version) {
        throw new StateError('intervalTreeIterator', 'the tree was modified during the iteration');
      }
      id = successor(this.a, id);
    }
  }

  /** Removes every node (each then reports `has() === false`). O(n). */
  clear(): void {
    const nodes = this.nodes;
    for (let id = 1; id < this.used; id++) {
      const node = nodes[id];
      if (node !== undefined) {
        node.owner = null;
        node.id = NIL;
      }
    }
    nodes.length = 1;
    this.values.length = 1;
    this.used = 1;
    this.freeHead = NIL;
    this.root = NIL;
    this.leftmost = NIL;
    this.count = 0;
    this.version++;
  }

  /**
   * Verifies every invariant and throws an Error naming the first one broken: parent links,
   * start order, `subtreeLast` augmentation, red-black rules (black root, no red-red edge,
   * equal black height), the cached leftmost node, ownership, records agreeing with their node
   * handles and the node count. O(n); for tests.
   */
  checkInvariants(): void {
    const root = this.root;
    const f = this.f;
    const a = this.a;
    if (root === NIL) {
      if (this.count !== 0 || this.leftmost !== NIL) throw new Error('empty tree with count or leftmost set');
      return;
    }
    if (f[F_SUB] !== -1 || a[I_COLOR] !== BLACK) throw new Error('the nil record was written');
    if (a[(root << 4) + I_PARENT] !== NIL) throw new Error('root has a parent');
    if (a[(root << 4) + I_COLOR] !== BLACK) throw new Error('root is red');
    let n = 0;
    let prev: IntervalTreeNode<T> | null = null;
    let blackHeight = -1;
    // Iterative in-order walk with parent links.
    let id = minimum(a, root);
    if (id !== this.leftmost) throw new Error('cached leftmost is not the minimum');
    while (id !== NIL) {
      n++;
      const node = this.nodes[id];
      if (node === undefined) throw new Error(`record ${id} has no node`);
      if (node.owner !== this || node.id !== id) throw new Error(`node ${show(node)} has the wrong owner`);
      if (!(node.start <= node.last)) throw new Error(`node ${show(node)} has start > last`);
      if (prev !== null && prev.start > node.start)
        throw new Error(`order: ${show(prev)} before ${show(node)}`);
      if (f[(id << 3) + F_START] !== node.start || f[(id << 3) + F_LAST] !== node.last) {
        throw new Error(`the record of ${show(node)} disagrees with the node`);
      }
      const color = a[(id << 4) + I_COLOR];
      const left = a[(id << 4) + I_LEFT]!;
      const right = a[(id << 4) + I_RIGHT]!;
      for (const child of [left, right]) {
        if (child !== NIL && a[(child << 4) + I_PARENT] !== id)
          throw new Error(`bad parent link under ${show(node)}`);
        if (child !== NIL && color === RED && a[(child << 4) + I_COLOR] === RED) {
          throw new Error(`red node ${show(node)} has a red child`);
        }
      }
      const expect = computeSubtreeLast(f, a, id);
      if (f[(id << 3) + F_SUB] !== expect) {
        throw new Error(`subtreeLast of ${show(node)} is ${f[(id << 3) + F_SUB]}, expected ${expect}`);
      }
      if (left === NIL || right === NIL) {
        // A node with a nil child ends a path: count the black nodes up to the root.
        let bh = 0;
        for (let p = id; p !== NIL; p = a[(p << 4) + I_PARENT]!) if (a[(p << 4) + I_COLOR] === BLACK) bh++;
        if (blackHeight === -1) blackHeight = bh;
        else if (bh !== blackHeight) throw new Error(`black height ${bh} != ${blackHeight} at ${show(node)}`);
      }
      prev = node;
      id = successor(a, id);
    }
    if (n !== this.count) throw new Error(`count is ${this.count} but the tree holds ${n} nodes`);
  }

  // ---- the node pool ----

  private allocRecord(): number {
    const id = this.freeHead;
    if (id !== NIL) {
      this.freeHead = this.a[(id << 4) + I_LEFT]!;
      return id;
    }
    if (this.used === this.f.length >> 3) {
      // Double the pool (one copy; record numbers stay valid).
      const buf = new ArrayBuffer(this.f.length * 16);
      new Float64Array(buf).set(this.f);
      this.f = new Float64Array(buf);
      this.a = new Int32Array(buf);
    }
    return this.used++;
  }

  private freeRecord(id: number): void {
    this.nodes[id] = undefined;
    this.values[id] = undefined;
    this.a[(id << 4) + I_LEFT] = this.freeHead;
    this.a[(id << 4) + I_COLOR] = FREE;
    this.freeHead = id;
  }

  // ---- red-black machinery (lib/rbtree.c with the interval-tree augment callbacks) ----

  /** Points `parent`'s link to `old` (or the root when `parent` is nil) at `id`. */
  private changeChild(old: number, id: number, parent: number): void {
    const a = this.a;
    if (parent === NIL) this.root = id;
    else if (a[(parent << 4) + I_LEFT] === old) a[(parent << 4) + I_LEFT] = id;
    else a[(parent << 4) + I_RIGHT] = id;
  }

  /** Left rotation at x; augment "rotate" callback: the new top inherits x's subtreeLast. */
  private rotateLeft(x: number): void {
    const a = this.a;
    const f = this.f;
    const y = a[(x << 4) + I_RIGHT]!;
    const parent = a[(x << 4) + I_PARENT]!;
    const yl = a[(y << 4) + I_LEFT]!;
    a[(x << 4) + I_RIGHT] = yl;
    if (yl !== NIL) a[(yl << 4) + I_PARENT] = x;
    a[(y << 4) + I_PARENT] = parent;
    this.changeChild(x, y, parent);
    a[(y << 4) + I_LEFT] = x;
    a[(x << 4) + I_PARENT] = y;
    f[(y << 3) + F_SUB] = f[(x << 3) + F_SUB]!;
    f[(x << 3) + F_SUB] = computeSubtreeLast(f, a, x);
  }

  /** Right rotation at x; mirror of {@link rotateLeft}. */
  private rotateRight(x: number): void {
    const a = this.a;
    const f = this.f;
    const y = a[(x << 4) + I_LEFT]!;
    const parent = a[(x << 4) + I_PARENT]!;
    const yr = a[(y << 4) + I_RIGHT]!;
    a[(x << 4) + I_LEFT] = yr;
    if (yr !== NIL) a[(yr << 4) + I_PARENT] = x;
    a[(y << 4) + I_PARENT] = parent;
    this.changeChild(x, y, parent);
    a[(y << 4) + I_RIGHT] = x;
    a[(x << 4) + I_PARENT] = y;
    f[(y << 3) + F_SUB] = f[(x << 3) + F_SUB]!;
    f[(x << 3) + F_SUB] = computeSubtreeLast(f, a, x);
  }

  private insertFixup(z: number): void {
    const a = this.a; // no allocation happens below: the view stays valid
    let parent = a[(z << 4) + I_PARENT]!;
    while (parent !== NIL && a[(parent << 4) + I_COLOR] === RED) {
      const gparent = a[(parent << 4) + I_PARENT]!; // a red node is never the root
      if (parent === a[(gparent << 4) + I_LEFT]) {
        const uncle = a[(gparent << 4) + I_RIGHT]!;
        if (uncle !== NIL && a[(uncle << 4) + I_COLOR] === RED) {
          a[(parent << 4) + I_COLOR] = BLACK;
          a[(uncle << 4) + I_COLOR] = BLACK;
          a[(gparent << 4) + I_COLOR] = RED;
          z = gparent;
          parent = a[(z << 4) + I_PARENT]!;
          continue;
        }
        if (z === a[(parent << 4) + I_RIGHT]) {
          this.rotateLeft(parent);
          z = parent;
          parent = a[(z << 4) + I_PARENT]!;
        }
        a[(parent << 4) + I_COLOR] = BLACK;
        a[(gparent << 4) + I_COLOR] = RED;
        this.rotateRight(gparent);
      } else {
        const uncle = a[(gparent << 4) + I_LEFT]!;
        if (uncle !== NIL && a[(uncle << 4) + I_COLOR] === RED) {
          a[(parent << 4) + I_COLOR] = BLACK;
          a[(uncle << 4) + I_COLOR] = BLACK;
          a[(gparent << 4) + I_COLOR] = RED;
          z = gparent;
          parent = a[(z << 4) + I_PARENT]!;
          continue;
        }
        if (z === a[(parent << 4) + I_LEFT]) {
          this.rotateRight(parent);
          z = parent;
          parent = a[(z << 4) + I_PARENT]!;
        }
        a[(parent << 4) + I_COLOR] = BLACK;
        a[(gparent << 4) + I_COLOR] = RED;
        this.rotateLeft(gparent);
      }
      break;
    }
    a[(this.root << 4) + I_COLOR] = BLACK;
  }

  /** Replaces the subtree rooted at u by the one rooted at v (v may be nil). */
  private transplant(u: number, v: number): void {
    const parent = this.a[(u << 4) + I_PARENT]!;
    this.changeChild(u, v, parent);
    if (v !== NIL) this.a[(v << 4) + I_PARENT] = parent;
  }

  /** Unlinks z (rb_erase_augmented): splice, propagate subtreeLast, then rebalance. */
  private erase(z: number): void {
    const a = this.a;
    const f = this.f;
    const zb = z << 4;
    let x: number;
    let xParent: number;
    let removedColor = a[zb + I_COLOR]!;
    // Node whose subtreeLast is stale regardless of what its descendants say (the moved successor).
    let moved = NIL;
    if (a[zb + I_LEFT] === NIL) {
      x = a[zb + I_RIGHT]!;
      xParent = a[zb + I_PARENT]!;
      this.transplant(z, x);
    } else if (a[zb + I_RIGHT] === NIL) {
      x = a[zb + I_LEFT]!;
      xParent = a[zb + I_PARENT]!;
      this.transplant(z, x);
    } else {
      const y = minimum(a, a[zb + I_RIGHT]!);
      const yb = y << 4;
      removedColor = a[yb + I_COLOR]!;
      x = a[yb + I_RIGHT]!;
      if (a[yb + I_PARENT] === z) {
        xParent = y;
      } else {
        xParent = a[yb + I_PARENT]!;
        this.transplant(y, x);
        a[yb + I_RIGHT] = a[zb + I_RIGHT]!;
        a[(a[yb + I_RIGHT]! << 4) + I_PARENT] = y;
      }
      this.transplant(z, y);
      a[yb + I_LEFT] = a[zb + I_LEFT]!;
      a[(a[yb + I_LEFT]! << 4) + I_PARENT] = y;
      a[yb + I_COLOR] = a[zb + I_COLOR]!;
      moved = y;
    }
    // Propagate subtreeLast upwards (the augment "propagate" callback). Above the moved
    // successor (or everywhere when none moved), an unchanged value means every ancestor is right.
    for (let p = xParent; p !== NIL; p = a[(p << 4) + I_PARENT]!) {
      const v = computeSubtreeLast(f, a, p);
      if (v === f[(p << 3) + F_SUB] && moved === NIL) break;
      f[(p << 3) + F_SUB] = v;
      if (p === moved) moved = NIL;
    }
    if (removedColor === BLACK) this.eraseFixup(x, xParent);
  }

  private eraseFixup(x: number, parent: number): void {
    const a = this.a;
    while (x !== this.root && isBlack(a, x)) {
      const p = parent;
      const pb = p << 4;
      if (x === a[pb + I_LEFT]) {
        let w = a[pb + I_RIGHT]!; // the sibling exists: x's side is one black short
        if (!isBlack(a, w)) {
          a[(w << 4) + I_COLOR] = BLACK;
          a[pb + I_COLOR] = RED;
          this.rotateLeft(p);
          w = a[pb + I_RIGHT]!;
        }
        if (isBlack(a, a[(w << 4) + I_LEFT]!) && isBlack(a, a[(w << 4) + I_RIGHT]!)) {
          a[(w << 4) + I_COLOR] = RED;
          x = p;
          parent = a[pb + I_PARENT]!;
          continue;
        }
        if (isBlack(a, a[(w << 4) + I_RIGHT]!)) {
          a[(a[(w << 4) + I_LEFT]! << 4) + I_COLOR] = BLACK;
          a[(w << 4) + I_COLOR] = RED;
          this.rotateRight(w);
          w = a[pb + I_RIGHT]!;
        }
        a[(w << 4) + I_COLOR] = a[pb + I_COLOR]!;
        a[pb + I_COLOR] = BLACK;
        a[(a[(w << 4) + I_RIGHT]! << 4) + I_COLOR] = BLACK;
        this.rotateLeft(p);
      } else {
        let w = a[pb + I_LEFT]!;
        if (!isBlack(a, w)) {
          a[(w << 4) + I_COLOR] = BLACK;
          a[pb + I_COLOR] = RED;
          this.rotateRight(p);
          w = a[pb + I_LEFT]!;
        }
        if (isBlack(a, a[(w << 4) + I_LEFT]!) && isBlack(a, a[(w << 4) + I_RIGHT]!)) {
          a[(w << 4) + I_COLOR] = RED;
          x = p;
          parent = a[pb + I_PARENT]!;
          continue;
        }
        if (isBlack(a, a[(w << 4) + I_LEFT]!)) {
          a[(a[(w << 4) + I_RIGHT]! << 4) + I_COLOR] = BLACK;
          a[(w << 4) + I_COLOR] = RED;
          this.rotateLeft(w);
          w = a[pb + I_LEFT]!;
        }
        a[(w << 4) + I_COLOR] = a[pb + I_COLOR]!;
        a[pb + I_COLOR] = BLACK;
        a[(a[(w << 4) + I_LEFT]! << 4) + I_COLOR] = BLACK;
        this.rotateRight(p);
      }
      x = this.root;
      break;
    }
    if (x !== NIL) a[(x << 4) + I_COLOR] = BLACK;
  }
}

/** Throws unless 0 <= start <= last <= 2^53 - 1, both integers. */
function checkRange(fn: string, start: number, last: number): void {
  if (!(start >= 0 && start <= last && last <= Number.MAX_SAFE_INTEGER) || !Number.isInteger(start)) {
    reject(fn, start, last);
  }
  if (!Number.isInteger(last)) reject(fn, start, last);
}

function reject(fn: string, start: number, last: number): never {
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new ArgumentError(fn, 'start', 'must be a non-negative safe integer', start);
  }
  if (!Number.isSafeInteger(last) || last < 0) {
    throw new ArgumentError(fn, 'last', 'must be a non-negative safe integer', last);
  }
  throw new ArgumentError(fn, 'last', `must be >= start (0x${start.toString(16)})`, last);
}

function computeSubtreeLast(f: Float64Array, a: Int32Array, id: number): number {
  let max = f[(id << 3) + F_LAST]!;
  const l = f[(a[(id << 4) + I_LEFT]! << 3) + F_SUB]!; // nil: -1
  const r = f[(a[(id << 4) + I_RIGHT]! << 3) + F_SUB]!;
  if (l > max) max = l;
  if (r > max) max = r;
  return max;
}

/** Nil is black. */
function isBlack(a: Int32Array, id: number): boolean {
  return a[(id << 4) + I_COLOR] === BLACK;
}

function minimum(a: Int32Array, id: number): number {
  for (let l = a[(id << 4) + I_LEFT]!; l !== NIL; l = a[(id << 4) + I_LEFT]!) id = l;
  return id;
}

function successor(a: Int32Array, id: number): number {
  const r = a[(id << 4) + I_RIGHT]!;
  if (r !== NIL) return minimum(a, r);
  let parent = a[(id << 4) + I_PARENT]!;
  while (parent !== NIL && id === a[(parent << 4) + I_RIGHT]) {
    id = parent;
    parent = a[(id << 4) + I_PARENT]!;
  }
  return parent;
}

/**
 * The kernel's `*_subtree_search()`: the leftmost record of `id`'s subtree that overlaps
 * `[start, last]`, given `start <= subtreeLast(id)`; nil when none does.
 */
function subtreeSearch(f: Float64Array, a: Int32Array, id: number, start: number, last: number): number {
  for (;;) {
    const left = a[(id << 4) + I_LEFT]!;
    if (start <= f[(left << 3) + F_SUB]!) {
      // Some node on the left ends at or after start; the leftmost such decides.
      id = left;
      continue;
    }
    const fb = id << 3;
    if (f[fb + F_START]! <= last) {
      if (start <= f[fb + F_LAST]!) return id;
      const right = a[(id << 4) + I_RIGHT]!;
      if (start <= f[(right << 3) + F_SUB]!) {
        id = right;
        continue;
      }
    }
    return NIL;
  }
}

/** The kernel's `*_iter_next()` without argument checks; nil when no further record overlaps. */
function iterNextUnchecked(f: Float64Array, a: Int32Array, id: number, start: number, last: number): number {
  let rb = a[(id << 4) + I_RIGHT]!;
  for (;;) {
    // Invariant: start(id) <= last, rb === right(id).
    if (start <= f[(rb << 3) + F_SUB]!) return subtreeSearch(f, a, rb, start, last);
    // Climb until we come up from a left child.
    let prev: number;
    do {
      const parent = a[(id << 4) + I_PARENT]!;
      if (parent === NIL) return NIL;
      prev = id;
      id = parent;
      rb = a[(id << 4) + I_RIGHT]!;
    } while (prev === rb);
    if (last < f[(id << 3) + F_START]!) return NIL;
    if (start <= f[(id << 3) + F_LAST]!) return id;
  }
}

function show<T>(node: IntervalTreeNode<T>): string {
  return `[0x${node.start.toString(16)}, 0x${node.last.toString(16)}]`;
}
