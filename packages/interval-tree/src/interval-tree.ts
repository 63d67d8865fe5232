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
 * @module
 */
import { ArgumentError, StateError } from '@hmmkit/sim';

const RED = 0;
const BLACK = 1;

/** A node's colour: 0 red, 1 black (the kernel's `RB_RED` / `RB_BLACK`). */
type Color = typeof RED | typeof BLACK;

/**
 * A node of an {@link IntervalTree}: the interval `[start, last]` (both inclusive) and the
 * user's value. `start` and `last` never change; the other fields are the tree's internals
 * (public only so the tree can reach them without indirection): do not write them.
 */
export class IntervalTreeNode<T> {
  /** First address of the interval (the kernel's `it->start`). */
  readonly start: number;
  /** Last address of the interval, inclusive (the kernel's `it->last`). */
  readonly last: number;
  /** The user's payload. */
  value: T;
  /** @internal Left child, or null. */
  left: IntervalTreeNode<T> | null;
  /** @internal Right child, or null. */
  right: IntervalTreeNode<T> | null;
  /** @internal Parent, or null for the root. */
  parent: IntervalTreeNode<T> | null;
  /** @internal Largest `last` in this node's subtree (the kernel's `__subtree_last`). */
  subtreeLast: number;
  /** @internal Red-black colour (0 red, 1 black). */
  color: Color;
  /** @internal The tree that holds this node, or null once removed. */
  owner: IntervalTree<T> | null;

  /** Builds a detached node; use {@link IntervalTree.insert} to create nodes in a tree. */
  constructor(start: number, last: number, value: T) {
    this.start = start;
    this.last = last;
    this.value = value;
    this.left = null;
    this.right = null;
    this.parent = null;
    this.subtreeLast = last;
    this.color = RED;
    this.owner = null;
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
  private root: IntervalTreeNode<T> | null = null;
  private leftmost: IntervalTreeNode<T> | null = null;
  private count = 0;
  /** Bumped by every insert, remove and clear; lets walks detect modification. */
  private version = 0;

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
    node.owner = this;
    let parent: IntervalTreeNode<T> | null = null;
    let cur = this.root;
    let isLeft = false;
    let leftmost = true;
    // Descend as interval_tree_insert() does, raising subtreeLast on the way down.
    while (cur !== null) {
      if (cur.subtreeLast < last) cur.subtreeLast = last;
      parent = cur;
      if (start < cur.start) {
        cur = cur.left;
        isLeft = true;
      } else {
        cur = cur.right;
        isLeft = false;
        leftmost = false;
      }
    }
    node.parent = parent;
    if (parent === null) this.root = node;
    else if (isLeft) parent.left = node;
    else parent.right = node;
    if (leftmost) this.leftmost = node;
    this.insertFixup(node);
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
    if (node === this.leftmost) {
      // The leftmost node has no left child: its successor is the right subtree's minimum or its parent.
      this.leftmost = node.right !== null ? minimum(node.right) : node.parent;
    }
    this.erase(node);
    node.owner = null;
    node.left = null;
    node.right = null;
    node.parent = null;
    node.subtreeLast = node.last;
    node.color = RED;
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
    // The kernel's fast path: nothing ends at or after start, or everything starts after last.
    if (root === null || root.subtreeLast < start || this.leftmost!.start > last) return null;
    return subtreeSearch(root, start, last);
  }

  /**
   * Models interval_tree_iter_next(): the next node after `node` in start order that overlaps
   * `[start, last]`, or null. Pass the same query as to {@link iterFirst}. Throws a StateError
   * if `node` is not in this tree. The tree must not change between the calls of one walk.
   */
  iterNext(node: IntervalTreeNode<T>, start: number, last: number): IntervalTreeNode<T> | null {
    if (node.owner !== this) throw new StateError('intervalTreeIterNext', 'node is not in this tree');
    checkRange('intervalTreeIterNext', start, last);
    return iterNextUnchecked(node, start, last);
  }

  /**
   * Calls `fn` for each node overlapping `[start, last]`, in the order of iterFirst/iterNext,
   * and stops early when `fn` returns `false`. Allocates nothing. If `fn` inserts into or removes
   * from this tree, the walk stops with a StateError (the change itself stands; the tree stays valid).
   */
  forEachOverlap(start: number, last: number, fn: OverlapVisitor<T>): void {
    let node = this.iterFirst(start, last);
    const version = this.version;
    while (node !== null) {
      if (fn(node) === false) return;
      if (this.version !== version) {
        throw new StateError('intervalTreeForEachOverlap', 'the tree was modified during the walk');
      }
      node = iterNextUnchecked(node, start, last);
    }
  }

  /** The first node in start order (the kernel's `rb_first_cached()`), or null when empty. */
  first(): IntervalTreeNode<T> | null {
    return this.leftmost;
  }

  /** The in-order successor of `node` (the kernel's `rb_next()`), or null. `node` must be in this tree. */
  next(node: IntervalTreeNode<T>): IntervalTreeNode<T> | null {
    if (node.owner !== this) throw new StateError('intervalTreeNext', 'node is not in this tree');
    return successor(node);
  }

  /** In-order iteration of all nodes (start order, ties in insertion order). Throws a StateError on modification. */
  *[Symbol.iterator](): IterableIterator<IntervalTreeNode<T>> {
    const version = this.version;
    let node = this.leftmost;
    while (node !== null) {
      yield node;
      if (this.version !== version) {
        throw new StateError('intervalTreeIterator', 'the tree was modified during the iteration');
      }
      node = successor(node);
    }
  }

  /** Removes every node (each then reports `has() === false`). O(n). */
  clear(): void {
    let node = this.root;
    // Iterative post-order teardown: detach children before their parent.
    while (node !== null) {
      if (node.left !== null) {
        node = node.left;
      } else if (node.right !== null) {
        node = node.right;
      } else {
        const parent: IntervalTreeNode<T> | null = node.parent;
        if (parent !== null) {
          if (parent.left === node) parent.left = null;
          else parent.right = null;
        }
        node.parent = null;
        node.owner = null;
        node.subtreeLast = node.last;
        node.color = RED;
        node = parent;
      }
    }
    this.root = null;
    this.leftmost = null;
    this.count = 0;
    this.version++;
  }

  /**
   * Verifies every invariant and throws an Error naming the first one broken: parent links,
   * start order, `subtreeLast` augmentation, red-black rules (black root, no red-red edge,
   * equal black height), the cached leftmost node, ownership and the node count. O(n); for tests.
   */
  checkInvariants(): void {
    const root = this.root;
    if (root === null) {
      if (this.count !== 0 || this.leftmost !== null)
        throw new Error('empty tree with count or leftmost set');
      return;
    }
    if (root.parent !== null) throw new Error('root has a parent');
    if (root.color !== BLACK) throw new Error('root is red');
    let n = 0;
    let prev: IntervalTreeNode<T> | null = null;
    let blackHeight = -1;
    // Iterative in-order walk with parent pointers.
    let node: IntervalTreeNode<T> | null = minimum(root);
    if (node !== this.leftmost) throw new Error('cached leftmost is not the minimum');
    while (node !== null) {
      n++;
      if (node.owner !== this) throw new Error(`node ${show(node)} has the wrong owner`);
      if (!(node.start <= node.last)) throw new Error(`node ${show(node)} has start > last`);
      if (prev !== null && prev.start > node.start)
        throw new Error(`order: ${show(prev)} before ${show(node)}`);
      for (const child of [node.left, node.right]) {
        if (child !== null && child.parent !== node) throw new Error(`bad parent link under ${show(node)}`);
        if (child !== null && node.color === RED && child.color === RED) {
          throw new Error(`red node ${show(node)} has a red child`);
        }
      }
      let expect = node.last;
      if (node.left !== null && node.left.subtreeLast > expect) expect = node.left.subtreeLast;
      if (node.right !== null && node.right.subtreeLast > expect) expect = node.right.subtreeLast;
      if (node.subtreeLast !== expect) {
        throw new Error(`subtreeLast of ${show(node)} is ${node.subtreeLast}, expected ${expect}`);
      }
      if (node.left === null || node.right === null) {
        // A node with a null child ends a path: count the black nodes up to the root.
        let bh = 0;
        for (let p: IntervalTreeNode<T> | null = node; p !== null; p = p.parent) if (p.color === BLACK) bh++;
        if (blackHeight === -1) blackHeight = bh;
        else if (bh !== blackHeight) throw new Error(`black height ${bh} != ${blackHeight} at ${show(node)}`);
      }
      prev = node;
      node = successor(node);
    }
    if (n !== this.count) throw new Error(`count is ${this.count} but the tree holds ${n} nodes`);
  }

  // ---- red-black machinery (lib/rbtree.c with the interval-tree augment callbacks) ----

  /** Left rotation at x; augment "rotate" callback: the new top inherits x's subtreeLast. */
  private rotateLeft(x: IntervalTreeNode<T>): void {
    const y = x.right!;
    const parent = x.parent;
    x.right = y.left;
    if (y.left !== null) y.left.parent = x;
    y.parent = parent;
    if (parent === null) this.root = y;
    else if (parent.left === x) parent.left = y;
    else parent.right = y;
    y.left = x;
    x.parent = y;
    y.subtreeLast = x.subtreeLast;
    x.subtreeLast = computeSubtreeLast(x);
  }

  /** Right rotation at x; mirror of {@link rotateLeft}. */
  private rotateRight(x: IntervalTreeNode<T>): void {
    const y = x.left!;
    const parent = x.parent;
    x.left = y.right;
    if (y.right !== null) y.right.parent = x;
    y.parent = parent;
    if (parent === null) this.root = y;
    else if (parent.left === x) parent.left = y;
    else parent.right = y;
    y.right = x;
    x.parent = y;
    y.subtreeLast = x.subtreeLast;
    x.subtreeLast = computeSubtreeLast(x);
  }

  private insertFixup(z: IntervalTreeNode<T>): void {
    let parent = z.parent;
    while (parent !== null && parent.color === RED) {
      const gparent = parent.parent!; // a red node is never the root
      if (parent === gparent.left) {
        const uncle = gparent.right;
        if (uncle !== null && uncle.color === RED) {
          parent.color = BLACK;
          uncle.color = BLACK;
          gparent.color = RED;
          z = gparent;
          parent = z.parent;
          continue;
        }
        if (z === parent.right) {
          this.rotateLeft(parent);
          z = parent;
          parent = z.parent!;
        }
        parent.color = BLACK;
        gparent.color = RED;
        this.rotateRight(gparent);
      } else {
        const uncle = gparent.left;
        if (uncle !== null && uncle.color === RED) {
          parent.color = BLACK;
          uncle.color = BLACK;
          gparent.color = RED;
          z = gparent;
          parent = z.parent;
          continue;
        }
        if (z === parent.left) {
          this.rotateRight(parent);
          z = parent;
          parent = z.parent!;
        }
        parent.color = BLACK;
        gparent.color = RED;
        this.rotateLeft(gparent);
      }
      break;
    }
    this.root!.color = BLACK;
  }

  /** Replaces the subtree rooted at u by the one rooted at v (v may be null). */
  private transplant(u: IntervalTreeNode<T>, v: IntervalTreeNode<T> | null): void {
    const parent = u.parent;
    if (parent === null) this.root = v;
    else if (parent.left === u) parent.left = v;
    else parent.right = v;
    if (v !== null) v.parent = parent;
  }

  /** Unlinks z (rb_erase_augmented): splice, propagate subtreeLast, then rebalance. */
  private erase(z: IntervalTreeNode<T>): void {
    let x: IntervalTreeNode<T> | null;
    let xParent: IntervalTreeNode<T> | null;
    let removedColor = z.color;
    // Node whose subtreeLast is stale regardless of what its descendants say (the moved successor).
    let moved: IntervalTreeNode<T> | null = null;
    if (z.left === null) {
      x = z.right;
      xParent = z.parent;
      this.transplant(z, x);
    } else if (z.right === null) {
      x = z.left;
      xParent = z.parent;
      this.transplant(z, x);
    } else {
      const y = minimum(z.right);
      removedColor = y.color;
      x = y.right;
      if (y.parent === z) {
        xParent = y;
      } else {
        xParent = y.parent;
        this.transplant(y, x);
        y.right = z.right;
        y.right.parent = y;
      }
      this.transplant(z, y);
      y.left = z.left;
      y.left.parent = y;
      y.color = z.color;
      moved = y;
    }
    // Propagate subtreeLast upwards (the augment "propagate" callback). Above the moved
    // successor (or everywhere when none moved), an unchanged value means every ancestor is right.
    for (let p = xParent; p !== null; p = p.parent) {
      const v = computeSubtreeLast(p);
      if (v === p.subtreeLast && moved === null) break;
      p.subtreeLast = v;
      if (p === moved) moved = null;
    }
    if (removedColor === BLACK) this.eraseFixup(x, xParent);
  }

  private eraseFixup(x: IntervalTreeNode<T> | null, parent: IntervalTreeNode<T> | null): void {
    while (x !== this.root && (x === null || x.color === BLACK)) {
      const p = parent!;
      if (x === p.left) {
        let w = p.right!; // the sibling exists: x's side is one black short
        if (w.color === RED) {
          w.color = BLACK;
          p.color = RED;
          this.rotateLeft(p);
          w = p.right!;
        }
        if ((w.left === null || w.left.color === BLACK) && (w.right === null || w.right.color === BLACK)) {
          w.color = RED;
          x = p;
          parent = p.parent;
          continue;
        }
        if (w.right === null || w.right.color === BLACK) {
          w.left!.color = BLACK;
          w.color = RED;
          this.rotateRight(w);
          w = p.right!;
        }
        w.color = p.color;
        p.color = BLACK;
        w.right!.color = BLACK;
        this.rotateLeft(p);
      } else {
        let w = p.left!;
        if (w.color === RED) {
          w.color = BLACK;
          p.color = RED;
          this.rotateRight(p);
          w = p.left!;
        }
        if ((w.left === null || w.left.color === BLACK) && (w.right === null || w.right.color === BLACK)) {
          w.color = RED;
          x = p;
          parent = p.parent;
          continue;
        }
        if (w.left === null || w.left.color === BLACK) {
          w.right!.color = BLACK;
          w.color = RED;
          this.rotateLeft(w);
          w = p.left!;
        }
        w.color = p.color;
        p.color = BLACK;
        w.left!.color = BLACK;
        this.rotateRight(p);
      }
      x = this.root;
      break;
    }
    if (x !== null) x.color = BLACK;
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

function computeSubtreeLast<T>(node: IntervalTreeNode<T>): number {
  let max = node.last;
  const l = node.left;
  const r = node.right;
  if (l !== null && l.subtreeLast > max) max = l.subtreeLast;
  if (r !== null && r.subtreeLast > max) max = r.subtreeLast;
  return max;
}

function minimum<T>(node: IntervalTreeNode<T>): IntervalTreeNode<T> {
  while (node.left !== null) node = node.left;
  return node;
}

function successor<T>(node: IntervalTreeNode<T>): IntervalTreeNode<T> | null {
  if (node.right !== null) return minimum(node.right);
  let parent = node.parent;
  while (parent !== null && node === parent.right) {
    node = parent;
    parent = node.parent;
  }
  return parent;
}

/**
 * The kernel's `*_subtree_search()`: the leftmost node of `node`'s subtree that overlaps
 * `[start, last]`, given `start <= node.subtreeLast`.
 */
function subtreeSearch<T>(
  node: IntervalTreeNode<T>,
  start: number,
  last: number,
): IntervalTreeNode<T> | null {
  for (;;) {
    const left = node.left;
    if (left !== null && start <= left.subtreeLast) {
      // Some node on the left ends at or after start; the leftmost such decides.
      node = left;
      continue;
    }
    if (node.start <= last) {
      if (start <= node.last) return node;
      const right = node.right;
      if (right !== null && start <= right.subtreeLast) {
        node = right;
        continue;
      }
    }
    return null;
  }
}

/** The kernel's `*_iter_next()` without argument checks. */
function iterNextUnchecked<T>(
  node: IntervalTreeNode<T>,
  start: number,
  last: number,
): IntervalTreeNode<T> | null {
  let rb = node.right;
  for (;;) {
    // Invariant: node.start <= last, rb === node.right.
    if (rb !== null && start <= rb.subtreeLast) return subtreeSearch(rb, start, last);
    // Climb until we come up from a left child.
    let prev: IntervalTreeNode<T>;
    do {
      const parent: IntervalTreeNode<T> | null = node.parent;
      if (parent === null) return null;
      prev = node;
      node = parent;
      rb = node.right;
    } while (prev === rb);
    if (last < node.start) return null;
    if (start <= node.last) return node;
  }
}

function show<T>(node: IntervalTreeNode<T>): string {
  return `[0x${node.start.toString(16)}, 0x${node.last.toString(16)}]`;
}
