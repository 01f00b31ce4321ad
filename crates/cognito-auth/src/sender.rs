//! Delivery of confirmation codes.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::AuthError;

/// Who a confirmation code goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// What a code is for: the mail says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodePurpose {
    /// Confirming the e-mail address of a new account.
    SignUp,
    /// Choosing a new password.
    PasswordReset,
}

/// Sends codes.
#[async_trait]
pub trait CodeSender: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `code`, for `purpose`, to `to`.
    async fn send_code(
        &self,
        to: &Recipient,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError>;
}

/// Writes the code to the log: the embedded default, for development without a mail server.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSender;

#[async_trait]
impl CodeSender for LogSender {
    async fn send_code(
        &self,
        to: &Recipient,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError> {
        tracing::info!(email = %to.email, code, ?purpose, "code (log sender: configure SMTP to e-mail it)");
        Ok(())
    }
}

/// The e-mail for a code from `product` (the service's name, as its users know it): subject and
/// plain-text body, Korean first, then English, with the code on a line of its own in both.
pub fn code_email(
    to: &Recipient,
    code: &str,
    purpose: CodePurpose,
    product: &str,
) -> (String, String) {
    match purpose {
        CodePurpose::SignUp => confirmation_email(to, code, product),
        CodePurpose::PasswordReset => reset_email(to, code, product),
    }
}

fn reset_email(to: &Recipient, code: &str, product: &str) -> (String, String) {
    let subject = format!("[{product}] 비밀번호 재설정 코드 / Your password reset code");
    let body = format!(
        "안녕하세요, {name}님.\n\n\
         비밀번호를 새로 정하려면 아래 코드를 입력해주세요. 코드는 1시간 동안 유효하며, \
         비밀번호를 바꾸면 모든 기기에서 로그아웃됩니다.\n\n\
         {code}\n\n\
         Hello {name},\n\n\
         Enter this code to choose a new {product} password. It is valid for one hour; changing the \
         password signs you out everywhere.\n\n\
         {code}\n\n\
         요청하지 않으셨다면 이 메일을 무시해주세요. 비밀번호는 바뀌지 않습니다. / \
         If you did not ask for this, ignore this e-mail: your password stays as it is.\n",
        name = to.name,
    );
    (subject, body)
}

fn confirmation_email(to: &Recipient, code: &str, product: &str) -> (String, String) {
    let subject = format!("[{product}] 이메일 인증 코드 / Your confirmation code");
    let body = format!(
        "안녕하세요, {name}님.\n\n\
         {product} 회원가입을 마치려면 아래 인증 코드를 입력해주세요. 코드는 24시간 동안 유효합니다.\n\n\
         {code}\n\n\
         Hello {name},\n\n\
         Enter this code to finish signing up to {product}. It is valid for 24 hours.\n\n\
         {code}\n\n\
         요청하지 않으셨다면 이 메일을 무시해주세요. / If you did not sign up, ignore this e-mail.\n",
        name = to.name,
    );
    (subject, body)
}

/// Sends codes by e-mail over SMTP (feature `smtp`): `smtp://host:port` (plain, for a local
/// relay), `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465`, with credentials in the
/// URL.
#[cfg(feature = "smtp")]
#[derive(Clone)]
pub struct SmtpSender {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

#[cfg(feature = "smtp")]
impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "smtp")]
impl SmtpSender {
    /// A sender for the server at `url`, writing from `from` (e.g. `Festa <no-reply@example.com>`).
    /// The display name of `from` names the service in the mail (else its address does).
    pub fn new(url: &str, from: &str) -> Result<Self, AuthError> {
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| AuthError::unavailable("smtp", e))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|_| AuthError::InvalidParameter("smtp sender address".into()))?;
        Ok(Self { transport, from })
    }
}

#[cfg(feature = "smtp")]
#[async_trait]
impl CodeSender for SmtpSender {
    async fn send_code(
        &self,
        to: &Recipient,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError> {
        use lettre::AsyncTransport;
        let product = self
            .from
            .name
            .clone()
            .unwrap_or_else(|| self.from.email.to_string());
        let (subject, body) = code_email(to, code, purpose, &product);
        let mailbox = lettre::message::Mailbox::new(
            Some(to.name.clone()),
            to.email
                .parse()
                .map_err(|_| AuthError::InvalidParameter("email".into()))?,
        );
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(mailbox)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| AuthError::unavailable("smtp", e))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| AuthError::unavailable("smtp", e))
    }
}

/// Keeps every code in memory: for tests and for programs that deliver codes themselves.
#[derive(Debug, Default)]
pub struct MemorySender {
    sent: Mutex<Vec<(String, String, CodePurpose)>>,
}

impl MemorySender {
    /// No codes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last code sent to `email`.
    pub fn last_code(&self, email: &str) -> Option<String> {
        let email = crate::normalize_email(email);
        self.sent
            .lock()
            .expect("sender lock")
            .iter()
            .rev()
            .find(|(to, _, _)| *to == email)
            .map(|(_, code, _)| code.clone())
    }

    /// The last code sent to `email` for `purpose`.
    pub fn last_code_for(&self, email: &str, purpose: CodePurpose) -> Option<String> {
        let email = crate::normalize_email(email);
        self.sent
            .lock()
            .expect("sender lock")
            .iter()
            .rev()
            .find(|(to, _, p)| *to == email && *p == purpose)
            .map(|(_, code, _)| code.clone())
    }

    /// How many codes were sent to `email`.
    pub fn count(&self, email: &str) -> usize {
        let email = crate::normalize_email(email);
        self.sent
            .lock()
            .expect("sender lock")
            .iter()
            .filter(|(to, _, _)| *to == email)
            .count()
    }
}

#[async_trait]
impl CodeSender for MemorySender {
    async fn send_code(
        &self,
        to: &Recipient,
        code: &str,
        purpose: CodePurpose,
    ) -> Result<(), AuthError> {
        self.sent.lock().expect("sender lock").push((
            crate::normalize_email(&to.email),
            code.to_owned(),
            purpose,
        ));
        Ok(())
    }
}

#[cfg(all(test, feature = "smtp"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_sender_delivers_a_readable_bilingual_message() {
        let python = test_support::require_service!(test_support::PYTHON);
        let sink = test_support::smtp::SmtpSink::start(&python);
        let sender = SmtpSender::new(&sink.url(), "SomSom <no-reply@somsom.test>").unwrap();
        let to = Recipient {
            email: "guest@example.com".into(),
            name: "솜솜".into(),
        };
        sender
            .send_code(&to, "042137", CodePurpose::SignUp)
            .await
            .unwrap();

        let mail = tokio::task::spawn_blocking(move || sink.message())
            .await
            .unwrap()
            .expect("the message reached the SMTP server");
        assert_eq!(mail["to"], serde_json::json!(["guest@example.com"]));
        assert_eq!(mail["from"], "no-reply@somsom.test");
        assert_eq!(mail["content_type"], "text/plain");
        assert_eq!(
            mail["subject"],
            "[SomSom] 이메일 인증 코드 / Your confirmation code"
        );
        let body = mail["body"].as_str().unwrap();
        assert!(body.contains("안녕하세요, 솜솜님."), "{body}");
        assert!(body.contains("Hello 솜솜,"), "{body}");
        let code_lines = body.lines().filter(|l| l.trim() == "042137").count();
        assert_eq!(
            code_lines, 2,
            "the code stands on its own line in both languages: {body}"
        );
    }
}
