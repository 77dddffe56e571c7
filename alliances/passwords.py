"""Password validators with messages in Chinese where Django's own come out in English."""
from django.contrib.auth.password_validation import MinimumLengthValidator as DjangoMinimumLengthValidator


class MinimumLengthValidator(DjangoMinimumLengthValidator):
    # Django 5.2 changed this message's msgid ("%d" for "%(min_length)d") and its zh_Hans catalogue
    # kept the old one, so "too short" is the one refusal users would read in English.
    def get_error_message(self):
        return f"密码长度太短。密码必须包含至少 {self.min_length} 个字符。"
