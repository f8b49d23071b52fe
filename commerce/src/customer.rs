//! A customer account. The password arrives already hashed (argon2id, by the HTTP layer);
//! this entity never sees a password.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ecommesh_actors::{Entity, Rejection, RejectionKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Customer,
    Admin,
}

impl Role {
    /// The role's name in tokens and views.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Customer, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerState {
    pub registered: bool,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: Role,
    pub active: bool,
    pub registered_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerCommand {
    Register {
        email: String,
        name: String,
        password_hash: String,
        role: Role,
    },
    Rename {
        name: String,
    },
    ChangePassword {
        password_hash: String,
    },
    SetRole {
        role: Role,
    },
    Deactivate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomerEvent {
    Registered {
        email: String,
        name: String,
        password_hash: String,
        role: Role,
        at_ms: u64,
    },
    Renamed {
        name: String,
    },
    PasswordChanged {
        password_hash: String,
    },
    RoleChanged {
        role: Role,
    },
    Deactivated,
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CustomerRejection {
    #[error("customer does not exist")]
    NotFound,
    #[error("customer already registered")]
    AlreadyRegistered,
    #[error("account is deactivated")]
    Deactivated,
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: Cow<'static, str>,
        reason: Cow<'static, str>,
    },
}

impl Rejection for CustomerRejection {
    fn code(&self) -> &'static str {
        match self {
            CustomerRejection::NotFound => "not_found",
            CustomerRejection::AlreadyRegistered => "conflict",
            CustomerRejection::Deactivated => "account_deactivated",
            CustomerRejection::Invalid { .. } => "validation_failed",
        }
    }
    fn kind(&self) -> RejectionKind {
        match self {
            CustomerRejection::NotFound => RejectionKind::NotFound,
            CustomerRejection::Invalid { .. } => RejectionKind::Invalid,
            _ => RejectionKind::Conflict,
        }
    }
}

fn check_email(email: &str) -> Result<(), CustomerRejection> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(CustomerRejection::Invalid {
            field: "email".into(),
            reason: "not a valid email address".into(),
        })
    }
}

fn check_name(name: &str) -> Result<(), CustomerRejection> {
    let n = name.trim().chars().count();
    if n == 0 || n > 100 {
        return Err(CustomerRejection::Invalid {
            field: "name".into(),
            reason: "must be 1 to 100 characters".into(),
        });
    }
    Ok(())
}

fn check_hash(hash: &str) -> Result<(), CustomerRejection> {
    if hash.is_empty() || hash.len() > 512 {
        return Err(CustomerRejection::Invalid {
            field: "password_hash".into(),
            reason: "must be a password hash".into(),
        });
    }
    Ok(())
}

pub struct Customer;

impl Entity for Customer {
    const KIND: &'static str = "customer";
    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Rejection = CustomerRejection;

    fn handle(
        state: &CustomerState,
        command: &CustomerCommand,
        now: u64,
    ) -> Result<Vec<CustomerEvent>, CustomerRejection> {
        use CustomerCommand::*;
        if let Register {
            email,
            name,
            password_hash,
            role,
        } = command
        {
            if state.registered {
                return Err(CustomerRejection::AlreadyRegistered);
            }
            check_email(email)?;
            check_name(name)?;
            check_hash(password_hash)?;
            return Ok(vec![CustomerEvent::Registered {
                email: email.to_ascii_lowercase(),
                name: name.trim().to_owned(),
                password_hash: password_hash.clone(),
                role: *role,
                at_ms: now,
            }]);
        }
        if !state.registered {
            return Err(CustomerRejection::NotFound);
        }
        if !state.active {
            return Err(CustomerRejection::Deactivated);
        }
        Ok(match command {
            Register { .. } => unreachable!("handled above"),
            Rename { name } => {
                check_name(name)?;
                vec![CustomerEvent::Renamed {
                    name: name.trim().to_owned(),
                }]
            }
            ChangePassword { password_hash } => {
                check_hash(password_hash)?;
                vec![CustomerEvent::PasswordChanged {
                    password_hash: password_hash.clone(),
                }]
            }
            SetRole { role } if *role == state.role => vec![],
            SetRole { role } => vec![CustomerEvent::RoleChanged { role: *role }],
            Deactivate => vec![CustomerEvent::Deactivated],
        })
    }

    fn apply(state: &mut CustomerState, event: &CustomerEvent) {
        match event {
            CustomerEvent::Registered {
                email,
                name,
                password_hash,
                role,
                at_ms,
            } => {
                *state = CustomerState {
                    registered: true,
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone(),
                    role: *role,
                    active: true,
                    registered_at_ms: *at_ms,
                };
            }
            CustomerEvent::Renamed { name } => state.name = name.clone(),
            CustomerEvent::PasswordChanged { password_hash } => {
                state.password_hash = password_hash.clone()
            }
            CustomerEvent::RoleChanged { role } => state.role = *role,
            CustomerEvent::Deactivated => state.active = false,
        }
    }

    fn event_type(event: &CustomerEvent) -> &'static str {
        match event {
            CustomerEvent::Registered { .. } => "CustomerRegistered",
            CustomerEvent::Renamed { .. } => "CustomerRenamed",
            CustomerEvent::PasswordChanged { .. } => "PasswordChanged",
            CustomerEvent::RoleChanged { .. } => "RoleChanged",
            CustomerEvent::Deactivated => "CustomerDeactivated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::given::{state, when};
    use CustomerCommand::*;

    fn register(email: &str) -> CustomerCommand {
        Register {
            email: email.into(),
            name: " Ada ".into(),
            password_hash: "$argon2id$x".into(),
            role: Role::Customer,
        }
    }

    #[test]
    fn registration_normalises_and_validates() {
        let ev = when::<Customer>(&[], register("Ada@Example.com")).unwrap();
        let s = state::<Customer>(&ev);
        assert_eq!(
            (s.email.as_str(), s.name.as_str(), s.active),
            ("ada@example.com", "Ada", true)
        );
        for bad in ["", "ada", "@x.io", "a@b", "a b@c.io", "a@.io"] {
            assert!(
                matches!(
                    when::<Customer>(&[], register(bad)).unwrap_err(),
                    CustomerRejection::Invalid { field, .. } if field == "email"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            when::<Customer>(&ev, register("b@c.io")).unwrap_err(),
            CustomerRejection::AlreadyRegistered
        );
    }

    #[test]
    fn deactivated_accounts_refuse_changes() {
        let mut h = when::<Customer>(&[], register("a@b.io")).unwrap();
        h.push(CustomerEvent::Deactivated);
        assert_eq!(
            when::<Customer>(&h, Rename { name: "x".into() }).unwrap_err(),
            CustomerRejection::Deactivated
        );
        assert_eq!(
            when::<Customer>(&[], Deactivate).unwrap_err(),
            CustomerRejection::NotFound
        );
    }

    #[test]
    fn role_changes_only_when_different() {
        let h = when::<Customer>(&[], register("a@b.io")).unwrap();
        assert!(when::<Customer>(
            &h,
            SetRole {
                role: Role::Customer
            }
        )
        .unwrap()
        .is_empty());
        assert_eq!(
            when::<Customer>(&h, SetRole { role: Role::Admin }).unwrap(),
            vec![CustomerEvent::RoleChanged { role: Role::Admin }]
        );
    }
}
