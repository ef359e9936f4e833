//! The principal's relation to the patient a request concerns: the small fact casbin decides
//! on instead of raw ids, which is what makes decisions cacheable.

use crate::identity::Principal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The principal is the patient.
    SelfPatient,
    /// The patient belongs to the principal's department.
    SameDepartment,
    /// An emergency grant opened with a reason.
    BreakGlass,
    /// A patient with none of the relations above.
    Other,
    /// The route concerns no patient.
    None,
}

impl Relation {
    pub const ALL: [Relation; 5] = [
        Relation::SelfPatient,
        Relation::SameDepartment,
        Relation::BreakGlass,
        Relation::Other,
        Relation::None,
    ];

    /// The name policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::SelfPatient => "self",
            Relation::SameDepartment => "same_department",
            Relation::BreakGlass => "break_glass",
            Relation::Other => "other",
            Relation::None => "none",
        }
    }

    fn index(self) -> usize {
        match self {
            Relation::SelfPatient => 0,
            Relation::SameDepartment => 1,
            Relation::BreakGlass => 2,
            Relation::Other => 3,
            Relation::None => 4,
        }
    }

    pub(super) fn slot<T>(self, slots: &[T; 5]) -> &T {
        &slots[self.index()]
    }

    pub(super) fn slot_mut<T>(self, slots: &mut [T; 5]) -> &mut T {
        &mut slots[self.index()]
    }
}

/// The relations that hold, in the order they are asked: `self` and `same_department` when
/// they hold (both can), else `other`; `none` when the route names neither patient nor
/// department. Break-glass is never computed here: it is asked for explicitly.
pub fn relations(
    principal: Option<&Principal>,
    scoped: bool,
    patient: Option<&str>,
    department: Option<&str>,
) -> Vec<Relation> {
    if !scoped {
        return vec![Relation::None];
    }
    let mut found = Vec::with_capacity(2);
    if let Some(principal) = principal {
        if patient.is_some() && principal.patient_id.as_deref() == patient {
            found.push(Relation::SelfPatient);
        }
        if department.is_some() && principal.department.as_deref() == department {
            found.push(Relation::SameDepartment);
        }
    }
    if found.is_empty() {
        found.push(Relation::Other);
    }
    found
}
