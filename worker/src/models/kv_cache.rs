//! Per-layer key/value cache preallocated for the whole generation, so a decode step writes one position in place
//! instead of concatenating (which would copy the whole cache every step). The memory is left uninitialised:
//! attention only ever reads the positions written so far (`append` returns views of exactly those), so zeroing
//! it would only add a full write of the cache to the timed prefill. `poison_unwritten` proves this in tests.

use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub fn new(
        layers: usize,
        batch: i64,
        heads: i64,
        max_len: i64,
        head_dim: i64,
        kind: Kind,
        device: Device,
    ) -> KvCache {
        let shape = [batch, heads, max_len, head_dim];
        KvCache {
            keys: (0..layers)
                .map(|_| Tensor::empty(shape, (kind, device)))
                .collect(),
            values: (0..layers)
                .map(|_| Tensor::empty(shape, (kind, device)))
                .collect(),
            len: 0,
            capacity: max_len as usize,
        }
    }

    /// Fills every position not yet written with NaN, so a model that read one would produce NaNs (the parity
    /// tests do this to every cache they use).
    pub fn poison_unwritten(&mut self) {
        let (start, rest) = (self.len as i64, (self.capacity - self.len) as i64);
        if rest > 0 {
            for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
                let _ = t.narrow(2, start, rest).fill_(f64::NAN);
            }
        }
    }

    /// Positions already cached (committed by `advance`).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes `k`, `v` (`[B, H, T, D]`) after the cached positions of `layer`; returns views of all keys/values
    /// including the new ones. Callers check capacity before generating (`infeasible` points never get here).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let t = k.size()[2];
        let start = self.len as i64;
        self.keys[layer].narrow(2, start, t).copy_(k);
        self.values[layer].narrow(2, start, t).copy_(v);
        (
            self.keys[layer].narrow(2, 0, start + t),
            self.values[layer].narrow(2, 0, start + t),
        )
    }

    /// Commits `t` positions written by every layer's `append`.
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Bytes held by the cache (keys and values of every layer).
    pub fn bytes(&self) -> u64 {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum()
    }
}
