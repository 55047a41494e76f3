//! Findings: what a detector has found, with its stable alert id, its revisions, the rule
//! for re-emitting it, the bound on how many are kept, and the alert built from it.
//!
//! A detector opens a finding with an id derived from its first evidence, updates it as
//! evidence grows ([`Findings::update`]), and calls [`Findings::tick`] / [`Findings::flush`].
//! The store decides when an update is worth a new revision (see [`FindingsConfig`]),
//! closes findings that stopped growing (emitting what was not yet said), and forgets
//! them later, or earlier when `max_findings` is reached (a cap hit).

use crate::detector::{table_bytes, DetectorKind, Every, MapStats};
use levee_model::{Alert, Severity, Ts, Window, ALERT_CONTRACT_VERSION};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `[detectors.<name>.findings]`: revisions and the bound on findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FindingsConfig {
    /// A finding is re-emitted when its members grew by at least this fraction since its
    /// last emission (or its severity rose, or a new class of evidence appeared).
    pub regrow_fraction: f64,
    /// A finding with no new evidence for this long (event time) is closed: members not
    /// yet emitted go out in a last revision. New evidence reopens it under the same id.
    pub close_after_ms: i64,
    /// A closed finding is forgotten this long after its last evidence.
    pub forget_after_ms: i64,
    /// Findings kept, open or closed. At the cap, opening one forgets the least recently
    /// updated (closed first) and counts a cap hit.
    pub max_findings: usize,
    /// Members per finding (and per alert); beyond it, counted and ignored.
    pub max_members: usize,
    /// Targets listed per alert; beyond it, not listed.
    pub max_targets: usize,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            regrow_fraction: 0.5,
            close_after_ms: 3_600_000,
            forget_after_ms: 7 * 24 * 3_600_000,
            max_findings: 10_000,
            max_members: 2_000,
            max_targets: 100,
        }
    }
}

impl FindingsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.regrow_fraction.is_nan()
            || self.regrow_fraction < 0.0
            || self.close_after_ms <= 0
            || self.forget_after_ms < self.close_after_ms
            || self.max_findings == 0
            || self.max_members < 2
        {
            return Err("findings: need regrow_fraction >= 0, close_after_ms > 0, forget_after_ms >= close_after_ms, max_findings > 0, max_members >= 2".into());
        }
        Ok(())
    }
}

/// One figure of an alert's `evidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Figure {
    Int(i64),
    Real(f64),
    Names(Vec<Box<str>>),
}

/// What was said in the last emission: the baseline of the material-change rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Emitted {
    members: usize,
    severity: Severity,
    classes: u32,
}

/// One finding: the state behind one alert id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub alert_id: String,
    pub revision: u32,
    members: BTreeSet<Box<str>>,
    targets: BTreeSet<Box<str>>,
    topic: Option<Box<str>>,
    start: Ts,
    end: Ts,
    score: f64,
    /// From `score`; a rise is material, a fall waits for the next revision.
    severity: Severity,
    /// Detector-defined evidence classes, one bit each.
    classes: u32,
    summary: String,
    /// `evidence`, in key order.
    figures: BTreeMap<Box<str>, Figure>,
    /// Event time of the last update.
    last_evidence: Ts,
    closed: bool,
    emitted: Option<Emitted>,
}

impl Finding {
    pub fn members(&self) -> &BTreeSet<Box<str>> {
        &self.members
    }

    pub fn targets(&self) -> &BTreeSet<Box<str>> {
        &self.targets
    }

    /// The alert for this finding's current state, every contract field filled.
    fn alert<D: DetectorKind>(&self) -> Alert {
        let evidence = self
            .figures
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Figure::Int(i) => serde_json::Value::from(*i),
                    Figure::Real(x) => serde_json::Value::from(*x),
                    Figure::Names(n) => n.iter().map(|s| s.to_string()).collect(),
                };
                (k.to_string(), v)
            })
            .collect();
        Alert {
            v: ALERT_CONTRACT_VERSION,
            alert_id: self.alert_id.clone(),
            revision: self.revision,
            kind: D::ALERT_KIND,
            severity: self.severity,
            score: self.score,
            window: Window {
                start: self.start,
                end: self.end,
            },
            emitted_at: 0,
            accounts: self.members.iter().map(|m| m.to_string()).collect(),
            targets: self.targets.iter().map(|t| t.to_string()).collect(),
            topic: self.topic.as_deref().map(str::to_owned),
            summary: self.summary.clone(),
            evidence,
            detector: D::label(),
        }
    }

    /// Members, severity or classes differ from the last emission.
    fn changed(&self) -> bool {
        self.emitted.is_none_or(|e| {
            e.members != self.members.len()
                || e.severity != self.severity
                || e.classes != self.classes
        })
    }

    /// A change worth a revision now (see [`FindingsConfig::regrow_fraction`]).
    fn material(&self, regrow_fraction: f64) -> bool {
        let Some(e) = self.emitted else {
            return true;
        };
        let grown = self.members.len() as f64 >= e.members as f64 * (1.0 + regrow_fraction)
            && self.members.len() > e.members;
        grown || self.severity > e.severity || self.classes & !e.classes != 0
    }
}

/// Estimated heap bytes of one owned name held twice (finding and member index).
fn name_bytes(name: &str) -> usize {
    2 * (name.len() + 16) + std::mem::size_of::<(Box<str>, Vec<u64>)>()
}

/// A detector's findings. See the module docs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Findings {
    cfg: FindingsConfig,
    /// By opening order: emission order is deterministic.
    items: BTreeMap<u64, Finding>,
    next: u64,
    /// Member -> the findings it belongs to (for matching a new group to a finding).
    by_member: FxHashMap<Box<str>, Vec<u64>>,
    /// Updated since the last emission check.
    dirty: BTreeSet<u64>,
    sweep: Every,
    /// Heap bytes of member and target names (kept as they change).
    name_bytes: usize,
    cap_hits: u64,
}

impl Findings {
    pub fn new(cfg: FindingsConfig) -> Self {
        let sweep = Every::new((cfg.close_after_ms / 8).max(1));
        Findings {
            cfg,
            items: BTreeMap::new(),
            next: 0,
            by_member: FxHashMap::default(),
            dirty: BTreeSet::new(),
            sweep,
            name_bytes: 0,
            cap_hits: 0,
        }
    }

    pub fn get(&self, key: u64) -> Option<&Finding> {
        self.items.get(&key)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Open a finding under `alert_id` (derived by the detector from its first evidence);
    /// returns its key. At `max_findings`, the least recently updated one (closed first)
    /// is forgotten and a cap hit counted.
    pub fn open(&mut self, alert_id: String, start: Ts, end: Ts) -> u64 {
        if self.items.len() >= self.cfg.max_findings {
            let victim = self
                .items
                .iter()
                .min_by_key(|(k, f)| (!f.closed, f.last_evidence, **k))
                .map(|(k, _)| *k);
            if let Some(k) = victim {
                self.forget(k);
                self.cap_hits += 1;
            }
        }
        let key = self.next;
        self.next += 1;
        self.items.insert(
            key,
            Finding {
                alert_id,
                revision: 0,
                members: BTreeSet::new(),
                targets: BTreeSet::new(),
                topic: None,
                start,
                end,
                score: 0.0,
                severity: Severity::Low,
                classes: 0,
                summary: String::new(),
                figures: BTreeMap::new(),
                last_evidence: end,
                closed: false,
                emitted: None,
            },
        );
        debug_assert!(self.items.len() <= self.cfg.max_findings);
        key
    }

    /// Change finding `key` with new evidence seen at `now` (event time); `None` if it was forgotten.
    pub fn update(&mut self, key: u64, now: Ts) -> Option<Update<'_>> {
        let f = self.items.get_mut(&key)?;
        f.last_evidence = f.last_evidence.max(now);
        f.closed = false;
        self.dirty.insert(key);
        Some(Update {
            key,
            f,
            by_member: &mut self.by_member,
            cfg: &self.cfg,
            name_bytes: &mut self.name_bytes,
            cap_hits: &mut self.cap_hits,
        })
    }

    /// The finding sharing most of `names` (the earliest opened among equals), if any shares one.
    pub fn best_overlap<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Option<u64> {
        let mut overlap: BTreeMap<u64, usize> = BTreeMap::new();
        for n in names {
            for k in self.by_member.get(n).into_iter().flatten() {
                *overlap.entry(*k).or_default() += 1;
            }
        }
        overlap
            .into_iter()
            .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)))
            .map(|(k, _)| k)
    }

    /// Emit material changes; close findings idle for `close_after_ms` (emitting what
    /// changed since their last revision) and forget those past `forget_after_ms`.
    pub fn tick<D: DetectorKind>(&mut self, watermark: Ts, out: &mut Vec<Alert>) {
        self.emit::<D>(out, false);
        if !self.sweep.due(watermark) {
            return;
        }
        let close = watermark.saturating_sub(self.cfg.close_after_ms);
        let forget = watermark.saturating_sub(self.cfg.forget_after_ms);
        let mut gone = Vec::new();
        for (k, f) in &mut self.items {
            if !f.closed && f.last_evidence < close {
                f.closed = true;
                if f.changed() {
                    emit_one::<D>(f, out);
                }
            }
            if f.closed && f.last_evidence < forget {
                gone.push(*k);
            }
        }
        for k in gone {
            self.forget(k);
        }
    }

    /// End of input: emit every finding with anything not yet emitted.
    pub fn flush<D: DetectorKind>(&mut self, out: &mut Vec<Alert>) {
        self.emit::<D>(out, true);
    }

    fn emit<D: DetectorKind>(&mut self, out: &mut Vec<Alert>, any_change: bool) {
        let frac = self.cfg.regrow_fraction;
        let dirty = std::mem::take(&mut self.dirty);
        let keys: Vec<u64> = if any_change {
            self.items.keys().copied().collect()
        } else {
            dirty.into_iter().collect()
        };
        for k in keys {
            let Some(f) = self.items.get_mut(&k) else {
                continue;
            };
            let due = if any_change {
                f.changed()
            } else {
                f.material(frac)
            };
            if due && !f.members.is_empty() {
                emit_one::<D>(f, out);
            }
        }
    }

    fn forget(&mut self, key: u64) {
        let Some(f) = self.items.remove(&key) else {
            return;
        };
        self.dirty.remove(&key);
        for m in &f.members {
            self.name_bytes = self.name_bytes.saturating_sub(name_bytes(m));
            if let Some(v) = self.by_member.get_mut(m) {
                v.retain(|k| *k != key);
                if v.is_empty() {
                    self.by_member.remove(m);
                }
            }
        }
        for t in &f.targets {
            self.name_bytes = self.name_bytes.saturating_sub(t.len() + 16);
        }
    }

    pub fn cap_hits(&self) -> u64 {
        self.cap_hits
    }

    /// The findings and their member index, for [`crate::DetectorStats`].
    pub fn map_stats(&self) -> [MapStats; 2] {
        let per_finding = std::mem::size_of::<(u64, Finding)>() + 256; // summary, figures
        [
            MapStats {
                map: "findings",
                entries: self.items.len() as u64,
                bytes: (self.items.len() * per_finding + self.name_bytes) as u64,
            },
            MapStats {
                map: "finding_members",
                entries: self.by_member.len() as u64,
                bytes: table_bytes::<Box<str>, Vec<u64>>(self.by_member.capacity(), 0),
            },
        ]
    }
}

fn emit_one<D: DetectorKind>(f: &mut Finding, out: &mut Vec<Alert>) {
    f.revision += 1;
    f.emitted = Some(Emitted {
        members: f.members.len(),
        severity: f.severity,
        classes: f.classes,
    });
    out.push(f.alert::<D>());
}

/// A finding being changed; see [`Findings::update`].
#[derive(Debug)]
pub struct Update<'a> {
    key: u64,
    f: &'a mut Finding,
    by_member: &'a mut FxHashMap<Box<str>, Vec<u64>>,
    cfg: &'a FindingsConfig,
    name_bytes: &'a mut usize,
    cap_hits: &'a mut u64,
}

impl Update<'_> {
    pub fn finding(&self) -> &Finding {
        self.f
    }

    /// Add a member; beyond `max_members` it is counted as a cap hit and ignored.
    pub fn add_member(&mut self, name: &str) {
        if self.f.members.contains(name) {
            return;
        }
        if self.f.members.len() >= self.cfg.max_members {
            *self.cap_hits += 1;
            return;
        }
        self.f.members.insert(name.into());
        self.by_member
            .entry(name.into())
            .or_default()
            .push(self.key);
        *self.name_bytes += name_bytes(name);
    }

    /// List a target; beyond `max_targets`, not listed.
    pub fn add_target(&mut self, target: &str) {
        if self.f.targets.len() < self.cfg.max_targets && self.f.targets.insert(target.into()) {
            *self.name_bytes += target.len() + 16;
        }
    }

    pub fn set_topic(&mut self, topic: &str) {
        self.f.topic = Some(topic.into());
    }

    /// Widen the evidence window to include `[start, end]`.
    pub fn span(&mut self, start: Ts, end: Ts) {
        self.f.start = self.f.start.min(start);
        self.f.end = self.f.end.max(end);
    }

    /// The current score (0..1), and the severity it maps to.
    pub fn score(&mut self, score: f64) {
        debug_assert!((0.0..=1.0).contains(&score), "score {score} out of 0..1");
        self.f.score = score;
        self.f.severity = Severity::from_score(score);
    }

    /// Mark a class of evidence (one bit, detector-defined) as present.
    pub fn class(&mut self, bit: u32) {
        self.f.classes |= bit;
    }

    pub fn summary(&mut self, summary: String) {
        self.f.summary = summary;
    }

    pub fn figure(&mut self, key: &str, value: Figure) {
        self.f.figures.insert(key.into(), value);
    }
}

#[cfg(test)]
mod tests;
