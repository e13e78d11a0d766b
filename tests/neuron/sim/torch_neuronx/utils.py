def get_platform_target() -> str:
    return "trn1"
