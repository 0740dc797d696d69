//! Consumer-group partition assignors, as the Java client defines them.
//!
//! The group leader (a consumer, not the broker) runs one of these over every
//! member's subscription and the partition counts it read from Metadata, and sends
//! the result back through SyncGroup. They are pure functions of their input, so
//! every member that ran them on the same input would compute the same answer.
//!
//! ```text
//!  members (id, group.instance.id, topics, owned partitions, generation)
//!  partition count per topic
//!        │
//!        ▼  Assignor::assign
//!  member id ──► partitions (sorted), every member present, possibly empty
//! ```
//!
//! * [`Assignor::Range`]: Kafka's `RangeAssignor`. Per topic, the members subscribed
//!   to it, in member order, get consecutive ranges; the first `n mod m` get one
//!   extra partition.
//! * [`Assignor::RoundRobin`]: Kafka's `RoundRobinAssignor`. All subscribed
//!   partitions sorted by (topic, partition) are dealt to the members in order,
//!   skipping members not subscribed to a partition's topic.
//! * [`Assignor::CooperativeSticky`]: Kafka's `CooperativeStickyAssignor` (KIP-429).
//!   Balanced (partition counts of members with the same subscription differ by at
//!   most one), sticky (a member keeps what it validly owned, as far as balance
//!   allows) and cooperative: a partition that moves to a new owner is left out of
//!   this round's assignment, so its previous owner revokes it first and the new
//!   owner gets it in the next rebalance (which the revoking member triggers).
//!
//! "Member order" is Kafka's `MemberInfo` order: members with a `group.instance.id`
//! first, by instance id, then the others by member id. Static members thus keep
//! their ranges when they restart with a new member id.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What the leader knows about one member: its JoinGroup metadata, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id`, if it is a static member.
    pub group_instance_id: Option<String>,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Partitions it owned when it joined (cooperative protocol; empty when eager).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation in which it owned them (-1 if unknown).
    pub generation: i32,
}

impl MemberSubscription {
    /// A member with no owned partitions.
    pub fn new<S: Into<String>>(
        member_id: impl Into<String>,
        topics: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            member_id: member_id.into(),
            group_instance_id: None,
            topics: topics.into_iter().map(Into::into).collect(),
            owned_partitions: Vec::new(),
            generation: -1,
        }
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// The rebalance protocol an assignor needs (KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebalanceProtocol {
    /// Every member revokes everything before joining.
    Eager,
    /// Members keep their partitions while rebalancing and revoke only those that
    /// move.
    Cooperative,
}

/// An assignment: member id to its partitions, sorted. Every member is present.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Assignor {
    /// Kafka's `RangeAssignor` (`range`).
    Range,
    /// Kafka's `RoundRobinAssignor` (`roundrobin`).
    RoundRobin,
    /// Kafka's `CooperativeStickyAssignor` (`cooperative-sticky`).
    CooperativeSticky,
}

impl Assignor {
    /// Every assignor, in Kafka 3's default preference order first.
    pub const ALL: [Assignor; 3] = [
        Assignor::Range,
        Assignor::CooperativeSticky,
        Assignor::RoundRobin,
    ];

    /// The protocol name sent in JoinGroup (the same as the Java client's, so mixed
    /// groups agree on it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor with this protocol name; the Java class names are accepted too.
    pub fn from_name(name: &str) -> Option<Self> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short {
            "range" | "RangeAssignor" => Some(Self::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Self::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }

    /// The rebalance protocol the assignor supports.
    pub fn protocol(self) -> RebalanceProtocol {
        match self {
            Self::Range | Self::RoundRobin => RebalanceProtocol::Eager,
            Self::CooperativeSticky => RebalanceProtocol::Cooperative,
        }
    }

    /// Assigns the partitions of the subscribed topics to `members`.
    ///
    /// `partitions` gives the partition count of each topic; topics missing from it
    /// (not created yet) are not assigned. Member ids must be distinct.
    pub fn assign(
        self,
        partitions: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| member_order(a, b));
        let mut out: GroupAssignment = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        match self {
            Self::Range => range(partitions, &sorted, &mut out),
            Self::RoundRobin => round_robin(partitions, &sorted, &mut out),
            Self::CooperativeSticky => cooperative_sticky(partitions, &sorted, &mut out),
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }
}

/// Kafka's `MemberInfo.compareTo`: static members first by instance id, then the
/// rest by member id.
fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

fn range(
    partitions: &BTreeMap<String, i32>,
    members: &[&MemberSubscription],
    out: &mut GroupAssignment,
) {
    for (topic, &count) in partitions {
        let subscribed: Vec<&&MemberSubscription> =
            members.iter().filter(|m| m.subscribes(topic)).collect();
        if subscribed.is_empty() || count <= 0 {
            continue;
        }
        let m = subscribed.len() as i32;
        let (per, extra) = (count / m, count % m);
        for (i, member) in subscribed.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if let Some(v) = out.get_mut(&member.member_id) {
                v.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
        }
    }
}

fn round_robin(
    partitions: &BTreeMap<String, i32>,
    members: &[&MemberSubscription],
    out: &mut GroupAssignment,
) {
    if members.is_empty() {
        return;
    }
    let mut next = 0usize;
    for (topic, &count) in partitions {
        if !members.iter().any(|m| m.subscribes(topic)) {
            continue;
        }
        for p in 0..count {
            // Kafka's CircularIterator: advance until a member subscribed to it.
            while !members[next % members.len()].subscribes(topic) {
                next += 1;
            }
            let member = members[next % members.len()];
            next += 1;
            if let Some(v) = out.get_mut(&member.member_id) {
                v.push(TopicPartition::new(topic.clone(), p));
            }
        }
    }
}

/// The valid previous owner of each partition: of the members that claim it (and
/// still subscribe to its topic), the one with the highest generation; nobody if two
/// members claim it in that same generation.
fn previous_owners(
    partitions: &BTreeMap<String, i32>,
    members: &[&MemberSubscription],
) -> HashMap<TopicPartition, String> {
    let mut claims: HashMap<TopicPartition, Vec<(i32, &str)>> = HashMap::new();
    for m in members {
        for tp in &m.owned_partitions {
            let exists = partitions
                .get(&tp.topic)
                .is_some_and(|&n| (0..n).contains(&tp.partition));
            if exists && m.subscribes(&tp.topic) {
                claims
                    .entry(tp.clone())
                    .or_default()
                    .push((m.generation, &m.member_id));
            }
        }
    }
    claims
        .into_iter()
        .filter_map(|(tp, c)| {
            let max = c.iter().map(|&(g, _)| g).max()?;
            let mut top = c.iter().filter(|&&(g, _)| g == max);
            let (_, owner) = top.next()?;
            top.next().is_none().then(|| (tp, (*owner).to_owned()))
        })
        .collect()
}

fn cooperative_sticky(
    partitions: &BTreeMap<String, i32>,
    members: &[&MemberSubscription],
    out: &mut GroupAssignment,
) {
    let owners = previous_owners(partitions, members);
    let index: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), i))
        .collect();
    let mut assigned: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    // 1. Stickiness: every member keeps what it validly owned.
    for (tp, owner) in &owners {
        if let Some(&i) = index.get(owner.as_str()) {
            assigned[i].insert(tp.clone());
        }
    }
    // 2. Every other subscribed partition goes to the least loaded eligible member.
    for (topic, &count) in partitions {
        for p in 0..count {
            let tp = TopicPartition::new(topic.clone(), p);
            if owners.contains_key(&tp) {
                continue;
            }
            let best = (0..members.len())
                .filter(|&i| members[i].subscribes(topic))
                .min_by_key(|&i| (assigned[i].len(), i));
            if let Some(i) = best {
                assigned[i].insert(tp);
            }
        }
    }
    // 3. Balance: move a partition from a member to an eligible one with at least two
    //    fewer until no such move exists. Each move lowers the sum of squared counts,
    //    so this ends. Partitions a member did not own before move first, so that as
    //    few owned partitions as possible change hands.
    loop {
        let mut best: Option<(usize, usize, usize, TopicPartition)> = None;
        for x in 0..members.len() {
            let mut candidates: Vec<&TopicPartition> = assigned[x].iter().collect();
            candidates.sort_by_key(|tp| {
                let owned = owners.get(*tp).is_some_and(|o| *o == members[x].member_id);
                (owned, std::cmp::Reverse(*tp))
            });
            for tp in candidates {
                for y in 0..members.len() {
                    if y == x || !members[y].subscribes(&tp.topic) {
                        continue;
                    }
                    let diff = assigned[x].len().saturating_sub(assigned[y].len());
                    if diff > 1 && best.as_ref().is_none_or(|b| diff > b.0) {
                        best = Some((diff, x, y, tp.clone()));
                    }
                }
            }
        }
        let Some((_, x, y, tp)) = best else { break };
        assigned[x].remove(&tp);
        assigned[y].insert(tp);
    }
    // 4. Cooperative: a partition moving away from its previous owner is withheld
    //    from its new owner this round; the old owner revokes it and rejoins.
    for (i, m) in members.iter().enumerate() {
        let keep: Vec<TopicPartition> = assigned[i]
            .iter()
            .filter(|tp| owners.get(*tp).is_none_or(|o| *o == m.member_id))
            .cloned()
            .collect();
        if let Some(v) = out.get_mut(&m.member_id) {
            *v = keep;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_tp(s: &str) -> TopicPartition {
        let (t, p) = s.rsplit_once('-').expect("topic-partition");
        TopicPartition::new(t, p.parse().expect("partition"))
    }

    /// One case of `testdata/assignors.txt`.
    struct Case {
        name: String,
        assignor: Assignor,
        partitions: BTreeMap<String, i32>,
        members: Vec<MemberSubscription>,
        expected: GroupAssignment,
    }

    fn parse_cases(table: &str) -> Vec<Case> {
        let body: String = table
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut cases = Vec::new();
        for chunk in body.split("---") {
            let mut case = Case {
                name: String::new(),
                assignor: Assignor::Range,
                partitions: BTreeMap::new(),
                members: Vec::new(),
                expected: BTreeMap::new(),
            };
            for line in chunk.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
                match word {
                    "case" => case.name = rest.to_owned(),
                    "assignor" => case.assignor = Assignor::from_name(rest).expect("assignor"),
                    "topics" => {
                        for t in rest.split_whitespace() {
                            let (name, n) = t.split_once(':').expect("topic:count");
                            case.partitions
                                .insert(name.to_owned(), n.parse().expect("count"));
                        }
                    }
                    "member" => {
                        let mut tokens = rest.split_whitespace();
                        let mut m = MemberSubscription::new(
                            tokens.next().expect("member id"),
                            Vec::<String>::new(),
                        );
                        let mut field = "";
                        for tok in tokens {
                            match tok {
                                "topics" | "owned" | "generation" | "instance" => field = tok,
                                _ => match field {
                                    "topics" => m.topics.push(tok.to_owned()),
                                    "owned" => m.owned_partitions.push(parse_tp(tok)),
                                    "generation" => m.generation = tok.parse().expect("gen"),
                                    "instance" => m.group_instance_id = Some(tok.to_owned()),
                                    _ => panic!("unexpected {tok} in {line}"),
                                },
                            }
                        }
                        case.members.push(m);
                    }
                    "expect" => {
                        let (id, tps) = rest.split_once(':').expect("expect id: partitions");
                        case.expected.insert(
                            id.trim().to_owned(),
                            tps.split_whitespace().map(parse_tp).collect(),
                        );
                    }
                    _ => panic!("unknown line {line:?}"),
                }
            }
            if !case.name.is_empty() {
                cases.push(case);
            }
        }
        cases
    }

    /// Table test: `testdata/assignors.txt` (cases from Kafka's RangeAssignorTest,
    /// RoundRobinAssignorTest and CooperativeStickyAssignorTest).
    #[test]
    fn assignor_table() {
        let cases = parse_cases(include_str!("../testdata/assignors.txt"));
        assert!(cases.len() >= 20, "only {} cases", cases.len());
        for c in &cases {
            let got = c.assignor.assign(&c.partitions, &c.members);
            assert_eq!(got, c.expected, "case {:?} ({})", c.name, c.assignor.name());
        }
    }

    /// Follows a cooperative group through rebalances until it is stable: each round
    /// every member reports what it owns after applying the previous assignment.
    /// Checks KIP-429's invariant: a partition is never assigned to a member while
    /// another member still owns it.
    fn converge(
        partitions: &BTreeMap<String, i32>,
        members: &mut [MemberSubscription],
    ) -> (GroupAssignment, usize) {
        for round in 1..10 {
            let got = Assignor::CooperativeSticky.assign(partitions, members);
            let owned: HashMap<TopicPartition, String> = members
                .iter()
                .flat_map(|m| {
                    m.owned_partitions
                        .iter()
                        .map(|tp| (tp.clone(), m.member_id.clone()))
                })
                .collect();
            for (member, tps) in &got {
                for tp in tps {
                    if let Some(owner) = owned.get(tp) {
                        assert_eq!(
                            owner, member,
                            "{tp} given to {member} while {owner} owns it"
                        );
                    }
                }
            }
            let mut changed = false;
            for m in members.iter_mut() {
                let new = got.get(&m.member_id).cloned().unwrap_or_default();
                changed |= new != m.owned_partitions;
                m.owned_partitions = new;
                m.generation = round as i32;
            }
            if !changed {
                return (got, round);
            }
        }
        panic!("no stable assignment after 10 rounds");
    }

    #[test]
    fn cooperative_group_converges_to_a_balanced_assignment() {
        let partitions: BTreeMap<String, i32> = [("a".to_owned(), 6), ("b".to_owned(), 5)]
            .into_iter()
            .collect();
        let mut members: Vec<MemberSubscription> = (0..3)
            .map(|i| MemberSubscription::new(format!("m{i}"), ["a", "b"]))
            .collect();
        let (first, _) = converge(&partitions, &mut members);
        let counts: Vec<usize> = first.values().map(Vec::len).collect();
        assert_eq!(counts.iter().sum::<usize>(), 11);
        assert!(counts.iter().max().expect("max") - counts.iter().min().expect("min") <= 1);
        // A fourth member joins: it converges in two rounds (revoke, then assign),
        // and every partition that stays with its owner is never revoked.
        members.push(MemberSubscription::new("m3", ["a", "b"]));
        let before: Vec<Vec<TopicPartition>> =
            members.iter().map(|m| m.owned_partitions.clone()).collect();
        let (after, rounds) = converge(&partitions, &mut members);
        assert!(rounds <= 3, "{rounds} rounds");
        let moved: usize = members
            .iter()
            .zip(&before)
            .map(|(m, b)| {
                b.iter()
                    .filter(|tp| !after[&m.member_id].contains(tp))
                    .count()
            })
            .sum();
        // 11 partitions over 4 members: 3,3,3,2; the newcomer takes 2 or 3, and only
        // those move.
        assert!(moved <= 3, "{moved} partitions moved");
        let counts: Vec<usize> = after.values().map(Vec::len).collect();
        assert!(counts.iter().max().expect("max") - counts.iter().min().expect("min") <= 1);
    }

    #[test]
    fn names_round_trip_and_accept_java_class_names() {
        for a in Assignor::ALL {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert_eq!(
            Assignor::from_name("org.apache.kafka.clients.consumer.RoundRobinAssignor"),
            Some(Assignor::RoundRobin)
        );
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
