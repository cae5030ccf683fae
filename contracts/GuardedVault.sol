// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @notice The parts of a Uniswap V2 pair the vault reads: its tokens, reserves and cumulative prices.
interface IUniswapV2PairOracle {
    /// @notice The pair's first token (the lower address).
    function token0() external view returns (address);
    /// @notice The pair's second token.
    function token1() external view returns (address);
    /// @notice The reserves and the time of the pair's last update (mod 2**32).
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
    /// @notice Sum over time of token1 per token0, UQ112x112 seconds (wraps by design).
    function price0CumulativeLast() external view returns (uint256);
    /// @notice Sum over time of token0 per token1, UQ112x112 seconds (wraps by design).
    function price1CumulativeLast() external view returns (uint256);
}

/// @notice The one router function the vault calls.
interface IUniswapV2Router02Swap {
    /// @notice Swap exactly `amountIn` along `path` for at least `amountOutMin`, paid to `to`.
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external returns (uint256[] memory amounts);
}

/// @title GuardedVault: funds an attested agent may trade, within limits the chain itself enforces.
/// @notice The owner (an EOA or a Safe) deposits and withdraws, pauses, sets the allowlists and the
/// TWAP settings, and registers the agent keys it has verified off-chain. A registered agent may only
/// swap, through an allowlisted Uniswap V2 router, between the quote token and an allowlisted base
/// token, with the notional valued at the pool's own time-weighted average price (TWAP) and counted
/// here against the agent's per-trade and rolling 24-hour caps, and with a minimum output no further
/// below the TWAP-implied output than the owner allows. Nothing an agent signs can move funds in any
/// other way: no withdrawal, no approval, no arbitrary call. The host that relays the agent's
/// transactions cannot roll this state back, and a leaked agent key is held to the same caps.
/// @dev Each trade carries the sequence number and EIP-712 digest of the enclave's receipt for the
/// decision and emits both, so every trade on chain links to its receipt; sequence numbers must rise,
/// so a receipt chain rolled back by the host cannot trade again.
contract GuardedVault is Ownable2Step, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Trades one agent may have within any 24 hours (the length of its spending record).
    uint256 public constant MAX_TRADES_PER_DAY = 64;
    /// @notice The length of the rolling window the daily cap counts over, in seconds.
    uint256 public constant DAY = 1 days;
    uint256 private constant BPS = 10_000;
    uint256 private constant Q112 = 2 ** 112;

    /// @notice The token every notional and cap is valued in (a USD stablecoin).
    address public immutable quoteToken;

    /// @notice A registered agent: its caps, what its attestation proved, and its spending record.
    /// @param capPerTrade The largest notional of one trade, in the quote token's smallest units.
    /// @param capPerDay The largest notional of all its trades in any 24 hours, in the same units.
    /// @param ledger Its registration and spending record, which every trade reads and writes.
    /// @param configHash SHA-256 of the agent's measured enclave config, as its quote binds it.
    /// @param measurement A digest of the quote's measurement registers.
    /// @param quoteHash SHA-256 of the quote the owner verified.
    struct Agent {
        uint128 capPerTrade;
        uint128 capPerDay;
        Ledger ledger;
        bytes32 configHash;
        bytes32 measurement;
        bytes32 quoteHash;
    }

    /// @notice What each trade of an agent reads and updates, in one storage slot (a trade writes
    /// it back whole, with one store).
    /// @param active Whether the agent may trade (false once revoked).
    /// @param head Where the next trade is written in the ring of spends.
    /// @param count How many spends in the ring may still lie within the last 24 hours.
    /// @param lastReceiptSeq The receipt sequence number of its last trade.
    /// @param spent The notional of the `count` spends of the ring, in quote units.
    /// @param lastSpendAt When the newest spend of the ring was made (a unix time).
    struct Ledger {
        bool active;
        uint8 head;
        uint8 count;
        uint64 lastReceiptSeq;
        uint128 spent;
        uint40 lastSpendAt;
    }

    /// @notice An allowlisted base token's Uniswap V2 pool with the quote token.
    struct Market {
        address pair;
        bool baseIsToken0;
        bool allowed;
    }

    /// @notice The two latest observations of a market's cumulative price (quote per base, UQ112x112 seconds).
    struct Observations {
        uint64 olderTime;
        uint64 newerTime;
        uint256 olderCumulative;
        uint256 newerCumulative;
    }

    // The TWAP settings are stored in 32 bits each (136 years of seconds), so that with the pause
    // flag they fill one storage slot (Ownable2Step's pending owner, Pausable's flag, these three):
    // a trade reads one cold slot for all of them.
    /// @notice The shortest span, in seconds, the TWAP a trade is checked against may cover.
    uint32 public twapWindow;
    /// @notice The longest span, in seconds, it may cover (older observations are stale).
    uint32 public twapMaxAge;
    /// @notice How far, in basis points, a trade's minimum output may sit below the TWAP-implied output.
    uint16 public maxDeviationBps;

    /// @notice Routers the vault may swap through.
    mapping(address router => bool) public routers;
    /// @notice Base tokens the vault may trade against the quote token, and their pools.
    mapping(address base => Market) public markets;
    mapping(address base => Observations) private _observations;
    mapping(address agent => Agent) private _agents;
    // Each spend: timestamp << 192 | notional; a ring of MAX_TRADES_PER_DAY per agent.
    mapping(address agent => uint256[MAX_TRADES_PER_DAY]) private _spends;

    /// @notice The owner registered (or re-registered) an agent with caps and what its attestation proved.
    event AgentRegistered(
        address indexed agent,
        uint128 capPerTrade,
        uint128 capPerDay,
        bytes32 configHash,
        bytes32 measurement,
        bytes32 quoteHash
    );
    /// @notice The owner changed an agent's caps.
    event CapsSet(address indexed agent, uint128 capPerTrade, uint128 capPerDay);
    /// @notice The owner revoked an agent: its calls revert from now on.
    event AgentRevoked(address indexed agent);
    /// @notice The owner allowed or disallowed a router.
    event RouterSet(address indexed router, bool allowed);
    /// @notice The owner allowed or disallowed trading `base` against the quote token in `pair`.
    event MarketSet(address indexed base, address indexed pair, bool allowed);
    /// @notice The owner changed the TWAP settings.
    event TwapSet(uint64 window, uint64 maxAge, uint16 maxDeviationBps);
    /// @notice A new observation of a market's cumulative price was recorded.
    event Observed(address indexed base, uint64 timestamp, uint256 cumulative);
    /// @notice The owner deposited `amount` of `token`.
    event Deposited(address indexed token, uint256 amount);
    /// @notice The owner withdrew `amount` of `token` to `to`.
    event Withdrawn(address indexed token, address indexed to, uint256 amount);
    /// @notice An agent traded: the receipt of its decision, what it paid and got, the notional counted.
    event Traded(
        address indexed agent,
        uint64 indexed receiptSeq,
        bytes32 receiptDigest,
        address tokenIn,
        address tokenOut,
        uint256 amountIn,
        uint256 amountOut,
        uint256 notional
    );

    /// @notice The caller is not a registered, unrevoked agent.
    error NotAgent(address caller);
    /// @notice The router is not allowlisted.
    error RouterNotAllowed(address router);
    /// @notice The token path is not the quote token and an allowlisted base token.
    error PathNotAllowed(address tokenIn, address tokenOut);
    /// @notice A zero amount, a zero address, or a setting out of range.
    error InvalidArgument(string what);
    /// @notice The pool has no observation old enough, or none young enough, for a TWAP.
    error TwapUnavailable(address base);
    /// @notice The trade's notional exceeds the agent's per-trade cap.
    error TradeCapExceeded(uint256 notional, uint256 cap);
    /// @notice The trade would take the agent's last-24-hours notional over its daily cap.
    error DailyCapExceeded(uint256 spent, uint256 notional, uint256 cap);
    /// @notice The agent already has MAX_TRADES_PER_DAY trades within the last 24 hours.
    error TooManyTrades();
    /// @notice The minimum output is further below the TWAP-implied output than allowed.
    error MinOutBelowTwap(uint256 minOut, uint256 floor);
    /// @notice The receipt sequence number does not rise above the agent's last trade's.
    error ReceiptSeqNotIncreasing(uint64 receiptSeq, uint64 lastReceiptSeq);
    /// @notice After the swap, the vault paid more or received less than the trade said.
    error SwapOutcome(uint256 paid, uint256 amountIn, uint256 received, uint256 minOut);
    /// @notice The vault cannot be left without an owner: its funds would be locked for good.
    error OwnershipCannotBeRenounced();

    /// @param owner_ The owner: deposits, withdraws, pauses, sets limits, registers agents.
    /// @param quoteToken_ The token notional and caps are valued in.
    /// @param twapWindow_ The shortest TWAP span, in seconds.
    /// @param twapMaxAge_ The longest TWAP span, in seconds (at least `twapWindow_`, below 2**32).
    /// @param maxDeviationBps_ The largest shortfall of a minimum output below the TWAP, in basis points.
    constructor(address owner_, address quoteToken_, uint64 twapWindow_, uint64 twapMaxAge_, uint16 maxDeviationBps_)
        Ownable(owner_)
    {
        if (quoteToken_ == address(0)) revert InvalidArgument("quote token");
        quoteToken = quoteToken_;
        _setTwap(twapWindow_, twapMaxAge_, maxDeviationBps_);
    }

    // -- owner ---------------------------------------------------------------------------

    /// @notice Move `amount` of `token` from the owner into the vault (the owner approves it first).
    function deposit(IERC20 token, uint256 amount) external onlyOwner {
        if (amount == 0) revert InvalidArgument("amount");
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(address(token), amount);
    }

    /// @notice Send `amount` of `token` to `to`; allowed at any time, paused or not.
    function withdraw(IERC20 token, uint256 amount, address to) external onlyOwner nonReentrant {
        if (amount == 0) revert InvalidArgument("amount");
        if (to == address(0)) revert InvalidArgument("recipient");
        token.safeTransfer(to, amount);
        emit Withdrawn(address(token), to, amount);
    }

    /// @notice Stop all trading until `unpause`.
    function pause() external onlyOwner {
        _pause();
    }

    /// @notice Allow trading again.
    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Allow or disallow swapping through `router` (a Uniswap V2 Router02).
    function setRouter(address router, bool allowed) external onlyOwner {
        if (router == address(0)) revert InvalidArgument("router");
        routers[router] = allowed;
        emit RouterSet(router, allowed);
    }

    /// @notice Allow or disallow trading `base` against the quote token, valued at `pair`'s TWAP.
    /// @dev `pair` must be the Uniswap V2 pair of exactly `base` and the quote token.
    function setMarket(address base, address pair, bool allowed) external onlyOwner {
        if (base == address(0) || base == quoteToken) revert InvalidArgument("base token");
        if (pair == address(0)) revert InvalidArgument("pair");
        address token0 = IUniswapV2PairOracle(pair).token0();
        address token1 = IUniswapV2PairOracle(pair).token1();
        bool baseIsToken0 = token0 == base && token1 == quoteToken;
        if (!baseIsToken0 && !(token1 == base && token0 == quoteToken)) {
            revert InvalidArgument("pair tokens");
        }
        if (markets[base].pair != pair) delete _observations[base];
        markets[base] = Market({pair: pair, baseIsToken0: baseIsToken0, allowed: allowed});
        emit MarketSet(base, pair, allowed);
    }

    /// @notice Set the TWAP span bounds and the largest deviation a trade's minimum output may have.
    /// @dev `window` at least 1 and at most `maxAge`, which is below 2**32; `deviationBps` 1 to 9,999.
    function setTwap(uint64 window, uint64 maxAge, uint16 deviationBps) external onlyOwner {
        _setTwap(window, maxAge, deviationBps);
    }

    /// @notice Register `agent` (or update a registered one) after verifying its attestation off-chain.
    /// @dev A re-registered agent keeps its spending record and receipt sequence number. A new agent's
    /// ring of spends is written once here (about 1.4M gas, paid by the owner), so that no trade pays
    /// for a storage slot written for the first time (20,000 gas each).
    /// @param agent The attested account key's address.
    /// @param capPerTrade The largest notional of one trade, in quote units.
    /// @param capPerDay The largest notional within any 24 hours, in quote units.
    /// @param configHash The config hash the agent's quote binds.
    /// @param measurement A digest of the quote's measurement registers.
    /// @param quoteHash SHA-256 of the verified quote.
    function registerAgent(
        address agent,
        uint128 capPerTrade,
        uint128 capPerDay,
        bytes32 configHash,
        bytes32 measurement,
        bytes32 quoteHash
    ) external onlyOwner {
        if (agent == address(0)) revert InvalidArgument("agent");
        if (capPerTrade == 0 || capPerDay == 0) revert InvalidArgument("caps");
        Agent storage registered = _agents[agent];
        if (registered.capPerDay == 0) _prefill(_spends[agent]);
        registered.capPerTrade = capPerTrade;
        registered.capPerDay = capPerDay;
        registered.ledger.active = true;
        registered.configHash = configHash;
        registered.measurement = measurement;
        registered.quoteHash = quoteHash;
        emit AgentRegistered(agent, capPerTrade, capPerDay, configHash, measurement, quoteHash);
    }

    /// @notice Change a registered agent's caps.
    function setCaps(address agent, uint128 capPerTrade, uint128 capPerDay) external onlyOwner {
        Agent storage registered = _agents[agent];
        if (!registered.ledger.active) revert NotAgent(agent);
        if (capPerTrade == 0 || capPerDay == 0) revert InvalidArgument("caps");
        registered.capPerTrade = capPerTrade;
        registered.capPerDay = capPerDay;
        emit CapsSet(agent, capPerTrade, capPerDay);
    }

    /// @notice Revoke `agent` at once: every later call of its reverts.
    function revokeAgent(address agent) external onlyOwner {
        if (!_agents[agent].ledger.active) revert NotAgent(agent);
        _agents[agent].ledger.active = false;
        emit AgentRevoked(agent);
    }

    /// @notice Refused: a vault without an owner would lock its funds for good.
    function renounceOwnership() public view override onlyOwner {
        revert OwnershipCannotBeRenounced();
    }

    // -- anyone --------------------------------------------------------------------------

    /// @notice Record an observation of `base`'s pool price, if the newest is at least a TWAP window old.
    /// @dev Anyone may call it; the host does once per market-data batch. Without observations no TWAP
    /// exists and trades revert: withholding them stops trading, it cannot loosen a limit.
    function observe(address base) external {
        Market memory market = markets[base];
        if (!market.allowed) revert PathNotAllowed(base, quoteToken);
        Observations storage seen = _observations[base];
        uint64 newest = seen.newerTime;
        if (newest != 0 && block.timestamp - newest < twapWindow) return;
        uint256 cumulative = _currentCumulative(market);
        seen.olderTime = newest;
        seen.olderCumulative = seen.newerCumulative;
        seen.newerTime = uint64(block.timestamp);
        seen.newerCumulative = cumulative;
        emit Observed(base, uint64(block.timestamp), cumulative);
    }

    // -- agents --------------------------------------------------------------------------

    /// @notice Swap `amountIn` of `tokenIn` for at least `minOut` of `tokenOut` through `router`, the
    /// output staying in the vault, within the caller's caps and the TWAP bound.
    /// @param router An allowlisted Uniswap V2 Router02.
    /// @param tokenIn The token paid: the quote token (a buy) or an allowlisted base token (a sell).
    /// @param tokenOut The token received: the other one of the two.
    /// @param amountIn The amount paid, in `tokenIn`'s smallest units.
    /// @param minOut The least accepted output; no more than `maxDeviationBps` below the TWAP's.
    /// @param deadline The router's deadline (a unix time).
    /// @param receiptSeq The sequence number of the enclave's receipt for this decision.
    /// @param receiptDigest That receipt's EIP-712 digest.
    /// @return amountOut What the vault received.
    function swap(
        address router,
        address tokenIn,
        address tokenOut,
        uint256 amountIn,
        uint256 minOut,
        uint256 deadline,
        uint64 receiptSeq,
        bytes32 receiptDigest
    ) external nonReentrant whenNotPaused returns (uint256 amountOut) {
        uint256 notional = _admit(router, tokenIn, tokenOut, amountIn, minOut, receiptSeq);
        amountOut = _swap(router, tokenIn, tokenOut, amountIn, minOut, deadline);
        emit Traded(msg.sender, receiptSeq, receiptDigest, tokenIn, tokenOut, amountIn, amountOut, notional);
    }

    // -- views ---------------------------------------------------------------------------

    /// @notice `base`'s time-weighted average price, quote per base as a UQ112x112 ratio of smallest
    /// units, over the span since the newest observation at least `twapWindow` old (at most `twapMaxAge`).
    function twap(address base) public view returns (uint256 price) {
        Market memory market = markets[base];
        if (!market.allowed) revert PathNotAllowed(base, quoteToken);
        Observations storage seen = _observations[base];
        uint256 since = seen.newerTime;
        uint256 then = seen.newerCumulative;
        if (since == 0 || block.timestamp - since < twapWindow) {
            since = seen.olderTime;
            then = seen.olderCumulative;
        }
        if (since == 0) revert TwapUnavailable(base);
        uint256 span = block.timestamp - since;
        if (span < twapWindow || span > twapMaxAge) revert TwapUnavailable(base);
        unchecked {
            price = (_currentCumulative(market) - then) / span; // cumulative prices wrap by design
        }
        if (price == 0) revert TwapUnavailable(base);
    }

    /// @notice An agent's registration, caps and receipt sequence number.
    function agentOf(address agent)
        external
        view
        returns (
            bool active,
            uint128 capPerTrade,
            uint128 capPerDay,
            uint64 lastReceiptSeq,
            bytes32 configHash,
            bytes32 measurement,
            bytes32 quoteHash
        )
    {
        Agent storage registered = _agents[agent];
        return (
            registered.ledger.active,
            registered.capPerTrade,
            registered.capPerDay,
            registered.ledger.lastReceiptSeq,
            registered.configHash,
            registered.measurement,
            registered.quoteHash
        );
    }

    /// @notice The notional of `agent`'s trades within the 24 hours before now, in quote units.
    function notionalUsed(address agent) external view returns (uint256 used) {
        Ledger storage ledger = _agents[agent].ledger;
        uint256 count = ledger.count;
        uint256 index = (ledger.head + MAX_TRADES_PER_DAY - count) % MAX_TRADES_PER_DAY;
        for (uint256 i = 0; i < count; ++i) {
            uint256 entry = _spends[agent][(index + i) % MAX_TRADES_PER_DAY];
            if (block.timestamp - (entry >> 192) < DAY) used += uint192(entry);
        }
    }

    /// @notice The two latest observations of `base`'s cumulative price.
    function observations(address base) external view returns (Observations memory) {
        return _observations[base];
    }

    // -- internals -----------------------------------------------------------------------

    /// @dev Check and store the TWAP settings (each span below 2**32 seconds).
    function _setTwap(uint64 window, uint64 maxAge, uint16 deviationBps) private {
        if (window == 0) revert InvalidArgument("twap window");
        if (maxAge < window || maxAge > type(uint32).max) revert InvalidArgument("twap max age");
        if (deviationBps == 0 || deviationBps >= BPS) revert InvalidArgument("max deviation");
        twapWindow = uint32(window);
        twapMaxAge = uint32(maxAge);
        maxDeviationBps = deviationBps;
        emit TwapSet(window, maxAge, deviationBps);
    }

    /// @dev Every check before the swap; records the trade's notional and receipt number.
    function _admit(address router, address tokenIn, address tokenOut, uint256 amountIn, uint256 minOut, uint64 receiptSeq)
        private
        returns (uint256 notional)
    {
        Agent storage agent = _agents[msg.sender];
        Ledger memory ledger = agent.ledger;
        if (!ledger.active) revert NotAgent(msg.sender);
        if (!routers[router]) revert RouterNotAllowed(router);
        if (amountIn == 0) revert InvalidArgument("amount");
        bool selling = tokenOut == quoteToken;
        address base = selling ? tokenIn : tokenOut;
        if ((!selling && tokenIn != quoteToken) || base == quoteToken) revert PathNotAllowed(tokenIn, tokenOut);
        if (!markets[base].allowed) revert PathNotAllowed(tokenIn, tokenOut);
        if (receiptSeq <= ledger.lastReceiptSeq) revert ReceiptSeqNotIncreasing(receiptSeq, ledger.lastReceiptSeq);
        uint256 price = twap(base); // quote per base, UQ112x112
        notional = selling ? Math.mulDiv(amountIn, price, Q112) : amountIn;
        uint256 capPerTrade = agent.capPerTrade;
        if (notional > capPerTrade) revert TradeCapExceeded(notional, capPerTrade);
        uint256 fairOut = selling ? notional : Math.mulDiv(amountIn, Q112, price);
        uint256 floor = Math.mulDiv(fairOut, BPS - maxDeviationBps, BPS);
        if (minOut < floor) revert MinOutBelowTwap(minOut, floor);
        _spend(ledger, _spends[msg.sender], notional, agent.capPerDay);
        ledger.lastReceiptSeq = receiptSeq;
        agent.ledger = ledger;
    }

    /// @dev Write every slot of a ring never used, with a value no trade reads (its count is 0).
    function _prefill(uint256[MAX_TRADES_PER_DAY] storage ring) private {
        for (uint256 i = 0; i < MAX_TRADES_PER_DAY; ++i) {
            ring[i] = 1;
        }
    }

    /// @dev Drop the spends older than 24 hours from the running sum, check the cap, record this
    /// one in the ring and in `ledger` (which the caller writes back).
    function _spend(
        Ledger memory ledger,
        uint256[MAX_TRADES_PER_DAY] storage ring,
        uint256 notional,
        uint256 capPerDay
    ) private {
        uint256 count = ledger.count;
        uint256 head = ledger.head;
        uint256 spent = ledger.spent;
        if (block.timestamp - ledger.lastSpendAt >= DAY) {
            // The newest spend is 24 hours old, so every spend is: none is read to learn it.
            count = 0;
            spent = 0;
        }
        uint256 oldest = (head + MAX_TRADES_PER_DAY - count) % MAX_TRADES_PER_DAY;
        while (count > 0) {
            uint256 entry = ring[oldest];
            if (block.timestamp - (entry >> 192) < DAY) break;
            spent -= uint192(entry);
            oldest = (oldest + 1) % MAX_TRADES_PER_DAY;
            --count;
        }
        if (spent + notional > capPerDay) revert DailyCapExceeded(spent, notional, capPerDay);
        if (count == MAX_TRADES_PER_DAY) revert TooManyTrades();
        ring[head] = (block.timestamp << 192) | notional; // notional <= capPerTrade < 2**128
        ledger.head = uint8((head + 1) % MAX_TRADES_PER_DAY);
        ledger.count = uint8(count + 1);
        ledger.spent = uint128(spent + notional);
        ledger.lastSpendAt = uint40(block.timestamp);
    }

    /// @dev The router swap, with the approval it needs for exactly this trade and nothing after it.
    function _swap(address router, address tokenIn, address tokenOut, uint256 amountIn, uint256 minOut, uint256 deadline)
        private
        returns (uint256 received)
    {
        IERC20 paid = IERC20(tokenIn);
        IERC20 got = IERC20(tokenOut);
        uint256 inBefore = paid.balanceOf(address(this));
        uint256 outBefore = got.balanceOf(address(this));
        paid.forceApprove(router, amountIn);
        address[] memory path = new address[](2);
        path[0] = tokenIn;
        path[1] = tokenOut;
        IUniswapV2Router02Swap(router).swapExactTokensForTokens(amountIn, minOut, path, address(this), deadline);
        if (paid.allowance(address(this), router) != 0) paid.forceApprove(router, 0);
        uint256 inAfter = paid.balanceOf(address(this));
        uint256 outAfter = got.balanceOf(address(this));
        uint256 spentIn = inBefore > inAfter ? inBefore - inAfter : 0;
        received = outAfter > outBefore ? outAfter - outBefore : 0;
        if (spentIn > amountIn || received < minOut) revert SwapOutcome(spentIn, amountIn, received, minOut);
    }

    /// @dev The pool's cumulative price of base in quote up to this block (UniswapV2OracleLibrary's
    /// counterfactual: the stored cumulative plus the current reserves' price since the pool's last update).
    function _currentCumulative(Market memory market) private view returns (uint256 cumulative) {
        IUniswapV2PairOracle pair = IUniswapV2PairOracle(market.pair);
        cumulative = market.baseIsToken0 ? pair.price0CumulativeLast() : pair.price1CumulativeLast();
        (uint112 reserve0, uint112 reserve1, uint32 updated) = pair.getReserves();
        uint32 nowTime = uint32(block.timestamp % 2 ** 32);
        if (updated != nowTime) {
            if (reserve0 == 0 || reserve1 == 0) revert TwapUnavailable(market.pair);
            unchecked {
                uint256 elapsed = uint32(nowTime - updated); // wraps by design
                uint256 spot = market.baseIsToken0
                    ? (uint256(reserve1) << 112) / reserve0
                    : (uint256(reserve0) << 112) / reserve1;
                cumulative += spot * elapsed;
            }
        }
    }
}
