//! [`HashEdit`]: a hash opened for writing in its shard ([`Shard::edit`]),
//! which sets and removes fields and their TTLs, converts the encoding at
//! the thresholds, and writes the result back with the side tables (key
//! TTL, earliest field expiry) kept in step.

use super::*;

impl Shard {
    /// Opens the hash at `key` for writing, creating it (empty, not yet
    /// stored) if missing. Call [`HashEdit::finish`] to store the result.
    pub(crate) fn edit<'s>(&'s mut self, key: &'s [u8], opts: &'s Options) -> HashEdit<'s> {
        self.preserve(key);
        let raw = self.raw(key);
        let had_hfe = raw.is_some_and(|(t, _)| t & FLAG_HFE != 0);
        let shape = raw.and_then(|(t, d)| shape_of(t, d));
        let (work, flag, existed, count) = match raw {
            Some((tag, data)) => match tag & ENC_MASK {
                TAG_DICT => {
                    let id = data.try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX);
                    (Work::Dict(id), tag & FLAG_TTL, true, None)
                }
                TAG_COMPACT_EX => (Work::CompactEx(data.to_vec()), tag & FLAG_TTL, true, None),
                // A shaped hash's values, edited where they are until a
                // field is added or removed.
                TAG_SHAPED => match (shape, data.get(2..)) {
                    (Some(id), Some(values)) => {
                        let n = self.shapes.get(id).map(shape::Shape::len);
                        (Work::Shaped(id, values.to_vec()), tag & FLAG_TTL, true, n)
                    }
                    _ => (Work::Compact(Vec::new()), tag & FLAG_TTL, true, None),
                },
                // Counting a big compact hash is a scan: done only if a
                // field is added (for the conversion check).
                _ => (Work::Compact(data.to_vec()), tag & FLAG_TTL, true, None),
            },
            None => (Work::Compact(Vec::new()), 0, false, Some(0)),
        };
        HashEdit {
            shard: self,
            key,
            opts,
            work,
            flag,
            existed,
            dirty: false,
            count,
            had_hfe,
            shape,
            fields_changed: false,
        }
    }
}

impl Shard {
    /// HSET's fast path: in a compact hash without field TTLs, every pair
    /// overwrites an existing field with a value that encodes to the size
    /// of the old one. Done in the table's entry, without copying the hash
    /// out and back or probing the table again. False if any pair does not
    /// qualify; the pairs before it are then written already, which the
    /// general path, setting them again, leaves as they are.
    pub(crate) fn overwrite_in_place(
        &mut self,
        key: &[u8],
        pairs: &[(&[u8], &[u8])],
        max_value: usize,
        pack: bool,
    ) -> bool {
        // Longer values convert the hash to a dict, as in Redis.
        if pairs
            .iter()
            .any(|(f, v)| f.len() > max_value || v.len() > max_value)
        {
            return false;
        }
        self.preserve(key);
        let Shard { keys, shapes, .. } = self;
        let Some(entry) = keys.get_mut(key) else {
            return false;
        };
        let Some((tag, buf)) = entry.split_first_mut() else {
            return false;
        };
        match *tag & (ENC_MASK | FLAG_HFE) {
            TAG_COMPACT => pairs
                .iter()
                .all(|(f, v)| compact::overwrite(buf, f, v, pack)),
            TAG_SHAPED => {
                let Some((id, values)) = buf.split_first_chunk_mut::<2>() else {
                    return false;
                };
                let Some(s) = shapes.get(u16::from_le_bytes(*id)) else {
                    return false;
                };
                pairs
                    .iter()
                    .all(|(f, v)| shape::overwrite(s, values, f, v, pack))
            }
            _ => false,
        }
    }
}

/// Removes `buf[start..end]` (within it), moving the bytes after it down.
#[inline]
fn cut(buf: &mut Vec<u8>, start: usize, end: usize) {
    let n = buf.len();
    if end < n {
        buf.copy_within(end.., start);
    }
    buf.truncate(n - (end - start));
}

pub(super) enum Work {
    Compact(Vec<u8>),
    /// A shaped hash: its shape and its values. The shape is the
    /// payload's until a field added or removed moves the hash to the
    /// shape a remembered move names (its reference is taken, and the
    /// payload's dropped, when it is stored).
    Shaped(u16, Vec<u8>),
    /// A shaped hash that gained or lost a field, held as its field list
    /// (a copy of the shape's, edited; the shard's scratch, lent until
    /// `finish`) and its values apart: stored with the new list's shape
    /// without building its pair buffer.
    Split {
        fields: Vec<u8>,
        values: Vec<u8>,
        /// The shape the fields were copied from and how they differ from
        /// its fields, while by one field.
        moved: Option<(u16, shape::Change)>,
    },
    /// Field/value/TTL triples.
    CompactEx(Vec<u8>),
    Dict(u32),
}

/// A hash opened for writing; see [`Shard::edit`].
pub(crate) struct HashEdit<'s> {
    pub(super) shard: &'s mut Shard,
    pub(super) key: &'s [u8],
    pub(super) opts: &'s Options,
    pub(super) work: Work,
    pub(super) flag: u8,
    pub(super) existed: bool,
    pub(super) dirty: bool,
    /// Pair count of a compact working buffer, once known.
    pub(super) count: Option<usize>,
    /// The hash had field TTLs before the edit.
    pub(super) had_hfe: bool,
    /// The shape the stored payload holds (until `finish` replaces it).
    pub(super) shape: Option<u16>,
    /// A field was added or removed (a plain compact hash whose fields did
    /// not change is stored back without looking for a shape).
    pub(super) fields_changed: bool,
}

impl HashEdit<'_> {
    pub(super) fn dict(&self, id: u32) -> Option<&Dict> {
        self.shard.dicts.get(id as usize)?.as_ref()
    }

    pub(super) fn dict_mut(&mut self, id: u32) -> Option<&mut Dict> {
        self.shard.dicts.get_mut(id as usize)?.as_mut()
    }

    /// Whether the key existed before this edit.
    pub(crate) fn existed(&self) -> bool {
        self.existed
    }

    /// The shaped (or split) hash as its pair buffer.
    fn unshape(&mut self) {
        let mut pairs = Vec::new();
        match &mut self.work {
            Work::Shaped(id, values) => {
                if let Some(s) = self.shard.shapes.get(*id) {
                    shape::join(s.fields(), values, &mut pairs);
                }
            }
            Work::Split { fields, values, .. } => {
                shape::join(fields, values, &mut pairs);
                self.shard.fields = std::mem::take(fields);
            }
            _ => return,
        }
        self.work = Work::Compact(pairs);
    }

    /// The shaped hash as its field list (a copy of its shape's, less the
    /// element at `skip`) and its values, to add or remove a field (the
    /// `change` made).
    fn split(&mut self, skip: std::ops::Range<usize>, change: Option<shape::Change>) {
        if let Work::Shaped(id, values) = &mut self.work {
            let Some(s) = self.shard.shapes.get(*id) else {
                self.unshape();
                return;
            };
            let mut fields = std::mem::take(&mut self.shard.fields);
            fields.clear();
            fields.extend_from_slice(&s.fields()[..skip.start]);
            fields.extend_from_slice(&s.fields()[skip.end..]);
            let values = std::mem::take(values);
            self.work = Work::Split {
                fields,
                values,
                moved: change.map(|c| (*id, c)),
            };
        }
    }

    /// Bytes of a shaped or split hash as a pair buffer.
    fn split_len(&self) -> usize {
        match &self.work {
            Work::Shaped(id, values) => {
                values.len() + self.shard.shapes.get(*id).map_or(0, |s| s.fields().len())
            }
            Work::Split { fields, values, .. } => fields.len() + values.len(),
            _ => 0,
        }
    }

    /// Where `field`'s value sits in a shaped or split hash: the value's
    /// and the field's byte ranges.
    fn find_split(&self, field: &[u8]) -> Option<(usize, usize, usize, usize)> {
        let probe = compact::Probe::new(field);
        let found = match &self.work {
            Work::Shaped(id, values) => shape::find(self.shard.shapes.get(*id)?, values, &probe),
            Work::Split { fields, values, .. } => shape::find_in(fields, values, &probe),
            _ => None,
        }?;
        Some((found.start, found.end, found.field_start, found.field_end))
    }

    /// Whether the hash has no field (no scan of a compact buffer).
    pub(crate) fn is_empty(&self) -> bool {
        match &self.work {
            Work::Compact(buf) | Work::CompactEx(buf) => buf.is_empty(),
            Work::Shaped(..) => false,
            Work::Split { fields, .. } => fields.is_empty(),
            Work::Dict(id) => self.dict(*id).is_none_or(|d| d.len() == 0),
        }
    }

    /// Converts to a dict now (field TTLs carried over).
    pub(super) fn convert(&mut self) -> Result<(), CommandError> {
        self.unshape();
        match &self.work {
            Work::Compact(buf) => {
                let d = dict_from_compact(buf, self.opts.pack_hex)
                    .map_err(|_| CommandError::too_large())?;
                let id = self.shard.alloc_dict(d);
                self.work = Work::Dict(id);
                self.dirty = true;
            }
            Work::CompactEx(buf) => {
                let (d, t) = dict_from_triples(buf, self.opts.pack_hex)
                    .map_err(|_| CommandError::too_large())?;
                let id = self.shard.alloc_dict(d);
                if !t.is_empty() {
                    self.shard.dict_ttls.insert(id, t);
                }
                self.work = Work::Dict(id);
                self.dirty = true;
            }
            Work::Dict(_) | Work::Shaped(..) | Work::Split { .. } => {}
        }
        Ok(())
    }

    /// Switches a compact hash to the layout with field TTLs, as Redis does
    /// on the first field-TTL command (even one that changes nothing).
    pub(crate) fn make_ex(&mut self) {
        self.unshape();
        if let Work::Compact(buf) = &self.work {
            self.work = Work::CompactEx(compact_ex::from_pairs(buf));
            self.dirty = true;
        }
    }

    /// Redis's pre-check before a write of field/value pairs whose longest
    /// argument is `max_len` bytes: converts first if it passes the value
    /// limit, or if `pairs` (0 to skip this part) passes the entries limit
    /// even if the pairs repeat or already exist.
    pub(crate) fn precheck(&mut self, pairs: usize, max_len: usize) -> Result<(), CommandError> {
        if matches!(
            self.work,
            Work::Compact(_) | Work::CompactEx(_) | Work::Shaped(..) | Work::Split { .. }
        ) && (pairs > self.opts.hash_max_listpack_entries
            || max_len > self.opts.hash_max_listpack_value)
        {
            self.convert()?;
        }
        Ok(())
    }

    /// Sets `field` to `value`, keeping an existing field's TTL when
    /// `keep_ttl`; true when the field is new. Converts to a dict when the
    /// value or field is too long or the hash too big.
    pub(crate) fn set_with(
        &mut self,
        field: &[u8],
        value: &[u8],
        keep_ttl: bool,
    ) -> Result<bool, CommandError> {
        if let Work::Shaped(..) | Work::Split { .. } = &self.work {
            // An existing field's value changes where it is; a new field
            // goes at the end of the field list and its value at the end
            // of the values, as in the pair buffer; anything else needs
            // the pair buffer.
            let limit = self.opts.hash_max_listpack_value;
            let pack = self.opts.pack_hex;
            match self.find_split(field) {
                Some((start, end, ..)) if value.len() <= limit => {
                    if let Work::Shaped(_, values) | Work::Split { values, .. } = &mut self.work {
                        compact::ValueEnc::new(value, pack).replace(values, start, end);
                    }
                    self.dirty = true;
                    return Ok(false);
                }
                None if field.len() <= limit
                    && value.len() <= limit
                    && self.split_len() + field.len() + value.len() + 20 <= COMPACT_MAX_BYTES =>
                {
                    if let Work::Shaped(id, values) = &mut self.work {
                        // A move remembered: the shape of the fields and
                        // this one, and only the value to add.
                        let mut elem = std::mem::take(&mut self.shard.fields);
                        elem.clear();
                        compact::push_elem(&mut elem, field);
                        let to = self.shard.shapes.after_addition(*id, &elem);
                        self.shard.fields = elem;
                        if let Some(to) = to {
                            *id = to;
                            compact::push_value(values, value, pack);
                            self.counted(true)?;
                            return Ok(true);
                        }
                    }
                    if let Work::Split { moved, .. } = &mut self.work {
                        *moved = None;
                    }
                    self.split(0..0, Some(shape::Change::Added));
                    if let Work::Split { fields, values, .. } = &mut self.work {
                        compact::push_elem(fields, field);
                        compact::push_value(values, value, pack);
                        self.counted(true)?;
                        return Ok(true);
                    }
                }
                _ => self.unshape(),
            }
        }
        if let Work::Compact(buf) | Work::CompactEx(buf) = &self.work {
            let limit = self.opts.hash_max_listpack_value;
            if field.len() > limit
                || value.len() > limit
                || buf.len() + field.len() + value.len() + 20 > COMPACT_MAX_BYTES
            {
                self.convert()?;
            }
        }
        let new = match &mut self.work {
            Work::Compact(buf) => {
                let new = compact::set(buf, field, value, self.opts.pack_hex);
                self.counted(new)?;
                new
            }
            Work::CompactEx(buf) => {
                let new = compact_ex::set(buf, field, value, keep_ttl, self.opts.pack_hex);
                self.counted(new)?;
                new
            }
            Work::Dict(id) => {
                let id = *id;
                let pack = self.opts.pack_hex;
                let d = self.dict_mut(id).ok_or_else(CommandError::too_large)?;
                let new = d
                    .set(field, value, pack)
                    .map_err(|_| CommandError::too_large())?;
                if !new && !keep_ttl {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                }
                new
            }
            // Written or unshaped above.
            Work::Shaped(..) | Work::Split { .. } => false,
        };
        Ok(new)
    }

    /// After a write to the compact buffer: counts a new field (scanning
    /// only if the count is not known yet) and converts to a dict past the
    /// entries limit.
    pub(super) fn counted(&mut self, new: bool) -> Result<(), CommandError> {
        self.dirty = true;
        if !new {
            return Ok(());
        }
        self.fields_changed = true;
        let n = match (self.count, &self.work) {
            (Some(c), _) => c + 1,
            (None, Work::Compact(buf)) => compact::len(buf),
            (None, Work::CompactEx(buf)) => compact_ex::len(buf),
            (None, Work::Dict(_) | Work::Shaped(..) | Work::Split { .. }) => return Ok(()),
        };
        self.count = Some(n);
        if n > self.opts.hash_max_listpack_entries {
            self.convert()?;
        }
        Ok(())
    }

    /// The TTL element of `field` (0 = none), expired or not; None when the
    /// field is missing.
    pub(crate) fn field_ttl(&self, field: &[u8]) -> Option<i64> {
        match &self.work {
            Work::Compact(buf) => compact::find(buf, &compact::Probe::new(field)).map(|_| 0),
            Work::Shaped(..) | Work::Split { .. } => self.find_split(field).map(|_| 0),
            Work::CompactEx(buf) => {
                compact_ex::find(buf, &compact::Probe::new(field)).map(|f| f.ttl)
            }
            Work::Dict(id) => {
                self.dict(*id)?.get(field)?;
                Some(
                    self.shard
                        .dict_ttls
                        .get(id)
                        .and_then(|t| t.get(field))
                        .unwrap_or(0),
                )
            }
        }
    }

    /// Sets the TTL of an existing `field` to `at` (Unix ms), or removes it
    /// when `at` is 0; false when the field is missing.
    pub(crate) fn set_field_ttl(&mut self, field: &[u8], at: i64) -> bool {
        match self.field_ttl(field) {
            None => return false,
            // Setting a TTL again still moves the triple (Redis re-inserts
            // it before the others with that expiry); removing none is a
            // no-op.
            Some(cur) if cur == at && at == compact_ex::NO_TTL => return true,
            Some(_) => {}
        }
        self.make_ex();
        match &mut self.work {
            Work::Compact(_) | Work::Shaped(..) | Work::Split { .. } => false,
            Work::CompactEx(buf) => {
                self.dirty = true;
                compact_ex::set_ttl(buf, field, at)
            }
            Work::Dict(id) => {
                let id = *id;
                if at == compact_ex::NO_TTL {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                } else {
                    self.shard.dict_ttls.entry(id).or_default().set(field, at);
                }
                true
            }
        }
    }

    /// Removes `field`; true when it was present.
    pub(crate) fn remove(&mut self, field: &[u8]) -> bool {
        if let Work::Shaped(..) | Work::Split { .. } = &self.work {
            return self.remove_split(field);
        }
        match &mut self.work {
            Work::Compact(buf) => {
                let gone = compact::remove(buf, field);
                if gone {
                    self.count = self.count.map(|c| c - 1);
                    self.dirty = true;
                    self.fields_changed = true;
                }
                gone
            }
            Work::CompactEx(buf) => {
                let gone = compact_ex::remove(buf, field);
                if gone {
                    self.count = self.count.map(|c| c - 1);
                    self.dirty = true;
                }
                gone
            }
            Work::Dict(id) => {
                let id = *id;
                let gone = self.dict_mut(id).is_some_and(|d| d.remove(field));
                if gone {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                }
                gone
            }
            // Removed above.
            Work::Shaped(..) | Work::Split { .. } => false,
        }
    }

    /// [`HashEdit::remove`] from a shaped or split hash (kept apart so
    /// that the plain path stays small).
    #[inline(never)]
    fn remove_split(&mut self, field: &[u8]) -> bool {
        // The field and its value leave their lists where they are.
        let Some((start, end, fs, fe)) = self.find_split(field) else {
            return false;
        };
        match &mut self.work {
            Work::Split { fields, moved, .. } => {
                cut(fields, fs, fe);
                *moved = None;
            }
            // A move remembered: the shape of the fields less this
            // one, and only the value to remove.
            Work::Shaped(id, values) => {
                let at = u16::try_from(fs).ok();
                match at.and_then(|at| self.shard.shapes.after_removal(*id, at)) {
                    Some(to) => {
                        *id = to;
                        cut(values, start, end);
                    }
                    None => self.split(fs..fe, at.map(shape::Change::Removed)),
                }
            }
            _ => {}
        }
        match &mut self.work {
            Work::Shaped(..) => {}
            Work::Split { values, .. } => cut(values, start, end),
            // No shape: unshaped, removed as a pair buffer.
            _ => return self.remove(field),
        }
        self.count = self.count.map(|c| c - 1);
        self.dirty = true;
        self.fields_changed = true;
        true
    }

    /// Stores the result: writes the compact buffer back, records a new
    /// dict, or deletes the key when the hash is empty; then brings the
    /// field-expiry index up to date.
    pub(crate) fn finish(mut self) -> Result<(), CommandError> {
        if let Work::Split { fields, .. } = &mut self.work {
            if fields.is_empty() {
                self.shard.fields = std::mem::take(fields);
            }
        }
        if self.is_empty() {
            if let Work::Dict(id) = self.work {
                if !self.existed {
                    // A dict created by this edit and emptied again.
                    if let Some(slot) = self.shard.dicts.get_mut(id as usize) {
                        *slot = None;
                        self.shard.free_dicts.push(id);
                        self.shard.dict_ttls.remove(&id);
                    }
                }
            }
            if self.existed {
                self.shard.delete(self.key);
            }
            return Ok(());
        }
        let min = match &self.work {
            Work::Compact(_) | Work::Shaped(..) | Work::Split { .. } => None,
            Work::CompactEx(buf) => compact_ex::min_ttl(buf),
            Work::Dict(id) => {
                let id = *id;
                if self
                    .shard
                    .dict_ttls
                    .get(&id)
                    .is_some_and(FieldTtls::is_empty)
                {
                    self.shard.dict_ttls.remove(&id);
                }
                self.shard.dict_ttls.get(&id).and_then(FieldTtls::min)
            }
        };
        if !self.dirty && !self.had_hfe && min.is_none() {
            return Ok(());
        }
        if self.dirty {
            let flag = self.flag | self.shard.snap_bit;
            let res = match &self.work {
                // Finds its shape again (keeps the old one if the fields
                // are the same).
                // Values changed in a plain hash: stored back as it is.
                Work::Compact(buf)
                    if self.existed && self.shape.is_none() && !self.fields_changed =>
                {
                    self.shard
                        .keys
                        .set_parts(self.key, &[&[TAG_COMPACT | flag], buf])
                }
                Work::Compact(buf) => {
                    self.shard.store_pairs(self.key, buf, flag, self.shape)?;
                    Ok(false)
                }
                // Finds the new field list's shape where it is.
                Work::Split {
                    fields,
                    values,
                    moved,
                } => {
                    self.shard
                        .store_split(self.key, fields, values, flag, self.shape, *moved)?;
                    Ok(false)
                }
                // The same shape: the payload's reference carries over.
                Work::Shaped(id, values) if self.shape == Some(*id) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_SHAPED | flag], &id.to_le_bytes(), values]),
                // Another shape (a remembered move): its reference is
                // taken for the new payload, the old payload's dropped.
                Work::Shaped(id, values) => {
                    let id = *id;
                    self.shard.shapes.retain(id);
                    let res = self
                        .shard
                        .keys
                        .set_parts(self.key, &[&[TAG_SHAPED | flag], &id.to_le_bytes(), values]);
                    let drop = if res.is_ok() { self.shape } else { Some(id) };
                    if let Some(d) = drop {
                        self.shard.shapes.release(d);
                    }
                    res
                }
                Work::CompactEx(buf) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_COMPACT_EX | flag], buf]),
                // Written for a new dict too: the key may still point at its
                // old compact payload (or at nothing). A new key has no TTL
                // flag.
                Work::Dict(id) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_DICT | flag], &id.to_le_bytes()]),
            };
            let other = !matches!(
                self.work,
                Work::Compact(_) | Work::Shaped(..) | Work::Split { .. }
            );
            // The field list's scratch goes back to the shard.
            if let Work::Split { fields, .. } = &mut self.work {
                self.shard.fields = std::mem::take(fields);
            }
            res.map_err(|_| CommandError::too_large())?;
            // The payload replaced held a shape.
            if let Some(id) = self.shape.filter(|_| other) {
                self.shard.shapes.release(id);
            }
        }
        if self.had_hfe || min.is_some() {
            let Shard { keys, hfe, .. } = &mut *self.shard;
            set_side(keys, hfe, FLAG_HFE, self.key, min)?;
        }
        Ok(())
    }
}
