"""The SMS adapter against local servers that speak (and check) the
providers' documented formats, and its signatures against the providers'
published examples."""

import socket

import pytest

from kapok.cloud.core.config import Settings
from kapok.cloud.notifications import sms
from kapok.cloud.notifications.adapters import DeliveryError, Message, Target

from .sms_servers import AliyunServer, TencentServer

KEY_ID, SECRET, APP_ID = "LTAI5tKapokTest", "kapok-test-secret", "1400000001"
PARAMS = {"kind": "燃气泄漏", "place": "3栋1201", "time": "03:12"}
MESSAGE = Message(key="ntf-42-1", subject="告警", text="3栋1201 燃气泄漏", params=PARAMS)


def settings(provider: str, endpoint: str, **kw) -> Settings:
    values = {
        "sms_provider": provider,
        "sms_endpoint": endpoint,
        "sms_key_id": KEY_ID,
        "sms_key_secret": SECRET,
        "sms_sign_name": "木棉社区",
        "sms_template": "SMS_154950909" if provider == "aliyun" else "1110",
        "sms_app_id": APP_ID,
        "notify_timeout_seconds": 5,
    }
    return Settings(**{**values, **kw})


def phone(number: str = "13800138000") -> Target:
    return Target(kind="sms", target=number)


@pytest.fixture(params=["aliyun", "tencent"])
def provider(request):
    """(provider name, running local server)"""
    if request.param == "aliyun":
        server = AliyunServer(KEY_ID, SECRET)
    else:
        server = TencentServer(KEY_ID, SECRET, APP_ID)
    with server:
        yield request.param, server


# -- published examples -------------------------------------------------------

# Aliyun SMS documentation, "HTTP协议及签名" (help.aliyun.com/document_detail/56189):
# a GET SendSms with AccessKeyId testId and AccessKeySecret testSecret.
ALIYUN_SMS_EXAMPLE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}


def test_aliyun_signature_matches_the_sms_documentation_example():
    assert sms.aliyun_signature(ALIYUN_SMS_EXAMPLE, "testSecret", "GET") == (
        "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    )
    # a Signature already present is not signed
    signed = {**ALIYUN_SMS_EXAMPLE, "Signature": "x"}
    assert sms.aliyun_signature(signed, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_signature_matches_the_rpc_signature_documentation_example():
    # Alibaba Cloud "Signature mechanism" for RPC APIs: DescribeRegions, testsecret
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert sms.aliyun_signature(params, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_percent_encoding():
    assert sms.percent_encode("a b*~/+=") == "a%20b%2A~%2F%2B%3D"
    assert sms.percent_encode("栋") == "%E6%A0%8B"


def test_tc3_authorization_matches_the_published_example():
    # Tencent Cloud API 3.0 "Signature v3": CVM DescribeInstances, POST JSON,
    # SecretId AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE, SecretKey
    # Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, X-TC-Timestamp 1551113065
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    auth = sms.tc3_authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        host="cvm.tencentcloudapi.com",
        payload=payload,
        timestamp=1551113065,
        service="cvm",
    )
    assert auth == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


# -- phone numbers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "e164", "aliyun"),
    [
        ("13800138000", "+8613800138000", "13800138000"),
        ("+8613800138000", "+8613800138000", "13800138000"),
        (" 138-0013-8000 ", "+8613800138000", "13800138000"),
        ("+85261234567", "+85261234567", "85261234567"),
    ],
)
def test_phone_numbers(number, e164, aliyun):
    assert sms.e164(number) == e164
    assert sms.aliyun_number(number) == aliyun


@pytest.mark.parametrize(
    "number",
    ["", "1380013800", "23800138000", "+86123", "+8612800138000", "phone", "008613800138000"],
)
def test_malformed_phone_numbers(number):
    with pytest.raises(DeliveryError) as e:
        sms.e164(number)
    assert e.value.retry is False


# -- against the local servers --------------------------------------------------


@pytest.mark.parametrize("number", ["13800138000", "+8613800138000"])
def test_delivered(provider, number):
    name, server = provider
    sms.send(phone(number), MESSAGE, settings(name, server.url))
    [sent] = server.sent
    if name == "aliyun":
        assert sent["PhoneNumbers"] == "13800138000"
        assert sent["SignName"] == "木棉社区"
        assert sent["TemplateCode"] == "SMS_154950909"
        assert sent["TemplateParam"] == PARAMS
        assert sent["OutId"] == "ntf-42-1"
    else:
        assert sent["PhoneNumberSet"] == ["+8613800138000"]
        assert sent["SignName"] == "木棉社区"
        assert sent["TemplateId"] == "1110"
        assert sent["TemplateParamSet"] == ["燃气泄漏", "3栋1201", "03:12"]
        assert sent["SmsSdkAppId"] == APP_ID
        assert sent["SessionContext"] == "ntf-42-1"
        assert sent["Region"] == "ap-guangzhou"


def test_every_send_is_signed_afresh(provider):
    name, server = provider
    for _ in range(3):
        sms.send(phone(), MESSAGE, settings(name, server.url))
    assert len(server.sent) == 3


def test_wrong_secret_is_final(provider):
    name, server = provider
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url, sms_key_secret="wrong"))
    assert e.value.retry is False
    expected = "SignatureDoesNotMatch" if name == "aliyun" else "AuthFailure.SignatureFailure"
    assert expected in e.value.reason
    assert server.sent == []


def test_unknown_key_id_is_final(provider):
    name, server = provider
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url, sms_key_id="nobody"))
    assert e.value.retry is False
    expected = "InvalidAccessKeyId.NotFound" if name == "aliyun" else "AuthFailure.SecretIdNotFound"
    assert expected in e.value.reason


def test_throttled_is_retried(provider):
    name, server = provider
    server.mode = "throttle"
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url))
    assert e.value.retry is True
    expected = "isv.BUSINESS_LIMIT_CONTROL" if name == "aliyun" else "LimitExceeded."
    assert expected in e.value.reason


def test_number_refused_by_the_provider_is_final(provider):
    name, server = provider
    server.mode = "bad_number"
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url))
    assert e.value.retry is False
    expected = "isv.MOBILE_NUMBER_ILLEGAL" if name == "aliyun" else "IncorrectPhoneNumber"
    assert expected in e.value.reason


def test_http_500_is_retried(provider):
    name, server = provider
    server.mode = "http500"
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url))
    assert e.value.retry is True


def test_malformed_number_fails_before_any_request(provider):
    name, server = provider
    with pytest.raises(DeliveryError) as e:
        sms.send(phone("12345"), MESSAGE, settings(name, server.url))
    assert e.value.retry is False
    assert server.requests == []


@pytest.mark.parametrize("name", ["aliyun", "tencent"])
def test_server_down_is_retried(name):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, f"http://127.0.0.1:{port}/"))
    assert e.value.retry is True


def test_no_provider_configured():
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, Settings())
    assert e.value.retry is False
    assert e.value.reason == "no SMS provider configured (KAPOK_SMS_PROVIDER)"


def test_missing_credentials_fail_before_any_request(provider):
    name, server = provider
    with pytest.raises(DeliveryError) as e:
        sms.send(phone(), MESSAGE, settings(name, server.url, sms_key_secret="", sms_app_id=""))
    assert e.value.retry is False
    assert "KAPOK_SMS_KEY_SECRET" in e.value.reason
    assert ("KAPOK_SMS_APP_ID" in e.value.reason) == (name == "tencent")
    assert server.requests == []
